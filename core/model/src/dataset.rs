//! Interaction datasets for evaluation: the in-memory form, the CSV loader for real logs,
//! and the CSV writer used to hand the same data to other libraries.
//!
//! Interactions: a header line, then `user_id,item_id,timestamp[,weight|rating]`. Columns
//! are found by header name (`user_id`/`userId`/`user`, `item_id`/`itemId`/`movieId`/`item`,
//! `timestamp`/`time`, `weight`/`rating`), so MovieLens' `userId,movieId,rating,timestamp`
//! loads as is; an unrecognised header means the documented column order. Timestamps are
//! integers; values below 10¹¹ are taken as seconds, larger ones as milliseconds.
//!
//! Items (optional): a header, then `item_id,category[,...]`; the category column is the one
//! named `category` or `genres` (first `|`-separated genre), else the second; a column named
//! `price` or `price_minor` (minor units) gives the price band. Items that appear only in the
//! interactions join the catalog without features. Fields may be double-quoted (RFC 4180).

use std::collections::HashMap;
use std::io::{BufRead, Write};

use covey_store::EventKind;

use crate::catalog::{Catalog, ItemInfo, MAX_CATEGORY_LEN, MAX_ITEM_ID_LEN, price_band};
use crate::error::{Error, Result};

/// One (member, item) interaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    /// Member index (`0..Dataset::members`).
    pub member: u32,
    /// Catalog row.
    pub row: u32,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Implicit-feedback weight (kind weight, or the log's weight/rating).
    pub weight: f32,
    /// Loyalty kind, when known.
    pub kind: Option<EventKind>,
}

/// A catalog and the interactions of a population over it.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The items.
    pub catalog: Catalog,
    /// Number of members.
    pub members: usize,
    /// All interactions, in input order.
    pub interactions: Vec<Interaction>,
}

/// Longest accepted CSV line, in bytes.
const MAX_LINE: usize = 64 * 1024;

impl Dataset {
    /// Loads an interaction log and an optional item file (see the module docs). Errors name
    /// the file and the 1-based line.
    pub fn from_csv(interactions: impl BufRead, items: Option<impl BufRead>) -> Result<Self> {
        let mut catalog_items = Vec::new();
        let mut rows: HashMap<String, u32> = HashMap::new();
        if let Some(items) = items {
            for item in read_items(items)? {
                rows.insert(item.id.clone(), catalog_items.len() as u32);
                catalog_items.push(item);
            }
        }
        let mut members: HashMap<String, u32> = HashMap::new();
        let mut out = Vec::new();
        let mut lines = numbered_lines(interactions, "interactions");
        let header = match lines.next() {
            Some(h) => h?.1,
            None => return Err(csv_err("interactions", 1, "empty file: expected a header")),
        };
        let cols = InteractionColumns::from_header(
            &split_fields(&header).map_err(|r| csv_err("interactions", 1, r))?,
        );
        for line in lines {
            let (no, text) = line?;
            if text.trim().is_empty() {
                continue;
            }
            let fields = split_fields(&text).map_err(|r| csv_err("interactions", no, r))?;
            let rec = cols.parse(&fields).map_err(|r| Error::Csv {
                file: "interactions",
                line: no,
                reason: r,
            })?;
            let next = members.len() as u32;
            let member = *members.entry(rec.user.to_string()).or_insert(next);
            let row = match rows.get(rec.item) {
                Some(r) => *r,
                None => {
                    if rec.item.len() > MAX_ITEM_ID_LEN {
                        return Err(csv_err("interactions", no, "item id too long"));
                    }
                    let r = catalog_items.len() as u32;
                    rows.insert(rec.item.to_string(), r);
                    catalog_items.push(ItemInfo::new(rec.item));
                    r
                }
            };
            out.push(Interaction {
                member,
                row,
                time_ms: rec.time_ms,
                weight: rec.weight,
                kind: None,
            });
        }
        if out.is_empty() {
            return Err(csv_err(
                "interactions",
                1,
                "no interactions after the header",
            ));
        }
        Ok(Dataset {
            catalog: Catalog::new(catalog_items)?,
            members: members.len(),
            interactions: out,
        })
    }

    /// Writes the interactions as `user_id,item_id,timestamp,weight` (members as `m<index>`).
    pub fn write_interactions_csv(
        &self,
        interactions: &[Interaction],
        out: &mut impl Write,
    ) -> Result<()> {
        writeln!(out, "user_id,item_id,timestamp,weight")?;
        for i in interactions {
            let item = self.catalog.item(i.row).ok_or(Error::UnknownItem)?;
            writeln!(
                out,
                "m{},{},{},{}",
                i.member,
                quote(&item.id),
                i.time_ms,
                i.weight
            )?;
        }
        Ok(())
    }

    /// Writes the catalog as `item_id,category,price_band,available`.
    pub fn write_items_csv(&self, out: &mut impl Write) -> Result<()> {
        write_catalog_csv(&self.catalog, out)
    }
}

/// Writes a catalog as `item_id,category,price_band,available` (what [`read_catalog_csv`]
/// and the items file of [`Dataset::from_csv`] read back).
pub fn write_catalog_csv(catalog: &Catalog, out: &mut impl Write) -> Result<()> {
    writeln!(out, "item_id,category,price_band,available")?;
    for item in catalog.items() {
        let band = item.price_band.map(|b| b.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{}",
            quote(&item.id),
            quote(&item.category),
            band,
            item.available
        )?;
    }
    Ok(())
}

/// Reads a catalog from an items file (see the module docs; an `available` column of
/// `true`/`false` marks availability, default available). Errors name the line.
pub fn read_catalog_csv(input: impl BufRead) -> Result<Catalog> {
    Catalog::new(read_items(input)?)
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_err(file: &'static str, line: usize, reason: &str) -> Error {
    Error::Csv {
        file,
        line,
        reason: reason.to_string(),
    }
}

fn numbered_lines(
    input: impl BufRead,
    file: &'static str,
) -> impl Iterator<Item = Result<(usize, String)>> {
    input.lines().enumerate().map(move |(i, line)| {
        let no = i + 1;
        let text = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => csv_err(file, no, "not valid UTF-8"),
            _ => Error::Io(e),
        })?;
        if text.len() > MAX_LINE {
            return Err(csv_err(file, no, "line too long"));
        }
        Ok((no, text.trim_end_matches('\r').to_string()))
    })
}

/// Splits one CSV line into fields (RFC 4180 quoting, no embedded newlines).
fn split_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("text after a closing quote");
                }
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            _ => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quote");
    }
    fields.push(cur);
    Ok(fields)
}

fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "")
}

struct InteractionColumns {
    user: usize,
    item: usize,
    time: usize,
    weight: Option<usize>,
}

struct InteractionRecord<'a> {
    user: &'a str,
    item: &'a str,
    time_ms: i64,
    weight: f32,
}

impl InteractionColumns {
    fn from_header(header: &[String]) -> Self {
        let find = |names: &[&str]| {
            header
                .iter()
                .position(|h| names.contains(&normalise(h).as_str()))
        };
        match (
            find(&["userid", "user"]),
            find(&["itemid", "movieid", "item"]),
            find(&["timestamp", "time", "ts"]),
        ) {
            (Some(user), Some(item), Some(time)) => InteractionColumns {
                user,
                item,
                time,
                weight: find(&["weight", "rating"]),
            },
            _ => InteractionColumns {
                user: 0,
                item: 1,
                time: 2,
                weight: (header.len() > 3).then_some(3),
            },
        }
    }

    fn parse<'a>(&self, f: &'a [String]) -> Result<InteractionRecord<'a>, String> {
        let get = |i: usize, name: &str| {
            f.get(i)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("missing {name}"))
        };
        let user = get(self.user, "user_id")?;
        let item = get(self.item, "item_id")?;
        let raw_time: i64 = get(self.time, "timestamp")?
            .parse()
            .map_err(|_| "timestamp is not an integer".to_string())?;
        if raw_time < 0 {
            return Err("timestamp is negative".into());
        }
        let time_ms = if raw_time < 100_000_000_000 {
            raw_time.saturating_mul(1000)
        } else {
            raw_time
        };
        let weight = match self.weight {
            None => 1.0,
            Some(i) => {
                let w: f32 = get(i, "weight")?
                    .parse()
                    .map_err(|_| "weight is not a number".to_string())?;
                if !w.is_finite() || w < 0.0 {
                    return Err("weight must be finite and non-negative".into());
                }
                w
            }
        };
        Ok(InteractionRecord {
            user,
            item,
            time_ms,
            weight,
        })
    }
}

fn read_items(input: impl BufRead) -> Result<Vec<ItemInfo>> {
    let mut lines = numbered_lines(input, "items");
    let header = match lines.next() {
        Some(h) => split_fields(&h?.1).map_err(|r| csv_err("items", 1, r))?,
        None => return Err(csv_err("items", 1, "empty file: expected a header")),
    };
    let find = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.contains(&normalise(h).as_str()))
    };
    let category_col = find(&["category", "genres", "genre"]).unwrap_or(1);
    let price_col = find(&["price", "priceminor"]);
    let band_col = find(&["priceband"]);
    let available_col = find(&["available"]);
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        let (no, text) = line?;
        if text.trim().is_empty() {
            continue;
        }
        let f = split_fields(&text).map_err(|r| csv_err("items", no, r))?;
        let id = f
            .first()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| csv_err("items", no, "missing item_id"))?;
        if id.len() > MAX_ITEM_ID_LEN {
            return Err(csv_err("items", no, "item id too long"));
        }
        if !seen.insert(id.to_string()) {
            return Err(csv_err("items", no, "duplicate item id"));
        }
        let category = f
            .get(category_col)
            .map(|c| c.split('|').next().unwrap_or("").trim())
            .unwrap_or("");
        if category.len() > MAX_CATEGORY_LEN {
            return Err(csv_err("items", no, "category too long"));
        }
        let band = match (
            price_col.and_then(|c| f.get(c)),
            band_col.and_then(|c| f.get(c)),
        ) {
            (Some(p), _) if !p.trim().is_empty() => {
                Some(price_band(p.trim().parse().map_err(|_| {
                    csv_err("items", no, "price is not an integer")
                })?))
            }
            (_, Some(b)) if !b.trim().is_empty() => Some(
                b.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b < crate::catalog::PRICE_BANDS)
                    .ok_or_else(|| csv_err("items", no, "price band out of range"))?,
            ),
            _ => None,
        };
        let available = match available_col.and_then(|c| f.get(c)).map(|a| a.trim()) {
            None | Some("") | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(csv_err("items", no, "available must be true or false")),
        };
        let mut item = ItemInfo::new(id);
        item.category = category.to_string();
        item.price_band = band;
        item.available = available;
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(interactions: &str, items: Option<&str>) -> Result<Dataset> {
        Dataset::from_csv(interactions.as_bytes(), items.map(str::as_bytes))
    }

    #[test]
    fn catalog_csv_round_trips_features_and_availability() {
        let mut items: Vec<ItemInfo> = (0..4).map(|i| ItemInfo::new(format!("sku,{i}"))).collect();
        items[1].category = "tea \"green\"".into();
        items[2].price_band = Some(5);
        items[3].available = false;
        let catalog = Catalog::new(items).unwrap();
        let mut csv = Vec::new();
        write_catalog_csv(&catalog, &mut csv).unwrap();
        assert_eq!(read_catalog_csv(csv.as_slice()).unwrap(), catalog);
        let bad = "item_id,category,price_band,available\na,c,,maybe\n";
        assert!(matches!(
            read_catalog_csv(bad.as_bytes()),
            Err(Error::Csv { line: 2, .. })
        ));
    }

    #[test]
    fn loads_movielens_layout_and_items() {
        let d = load(
            "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n1,20,5,964982224\n2,10,3,964982000\n",
            Some("movieId,title,genres\n10,\"Heat, 1995\",Action|Crime\n20,Toy Story,Animation\n"),
        )
        .unwrap();
        assert_eq!(d.members, 2);
        assert_eq!(d.catalog.len(), 2);
        assert_eq!(d.catalog.item(0).unwrap().category, "Action");
        assert_eq!(d.interactions[0].time_ms, 964_982_703_000);
        assert_eq!(d.interactions[1].weight, 5.0);
    }

    #[test]
    fn malformed_lines_are_numbered() {
        let cases = [
            (
                "user_id,item_id,timestamp\n1,a,5\n1,b,notatime\n",
                3,
                "timestamp",
            ),
            (
                "user_id,item_id,timestamp,weight\n1,a,5,1\n\n2,b,6,-1\n",
                4,
                "weight",
            ),
            ("user_id,item_id,timestamp\n1,,5\n", 2, "item_id"),
            ("user_id,item_id,timestamp\n\"1,a,5\n", 2, "quote"),
        ];
        for (text, line, word) in cases {
            match load(text, None) {
                Err(Error::Csv {
                    line: l, reason, ..
                }) => {
                    assert_eq!(l, line, "{text}");
                    assert!(reason.contains(word), "{reason}");
                }
                other => panic!("expected a CSV error, got {other:?}"),
            }
        }
        assert!(matches!(load("", None), Err(Error::Csv { line: 1, .. })));
        let bad_items = load(
            "user_id,item_id,timestamp\n1,a,5\n",
            Some("item_id,category,price\na,x,cheap\n"),
        );
        assert!(matches!(
            bad_items,
            Err(Error::Csv {
                file: "items",
                line: 2,
                ..
            })
        ));
        let dup = load(
            "user_id,item_id,timestamp\n1,a,5\n",
            Some("item_id,category\na,x\nb,y\na,z\n"),
        );
        assert!(matches!(
            dup,
            Err(Error::Csv {
                file: "items",
                line: 4,
                ..
            })
        ));
    }

    #[test]
    fn csv_round_trip() {
        let d = load(
            "user_id,item_id,timestamp,weight\nu,\"a,b\",1000000000000,2\n",
            None,
        )
        .unwrap();
        let mut buf = Vec::new();
        d.write_interactions_csv(&d.interactions, &mut buf).unwrap();
        let back = load(std::str::from_utf8(&buf).unwrap(), None).unwrap();
        assert_eq!(back.catalog.item(0).unwrap().id, "a,b");
        assert_eq!(back.interactions[0].weight, 2.0);
    }
}
