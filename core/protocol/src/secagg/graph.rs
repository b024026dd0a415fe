//! The communication graph: a Harary graph of even degree k over a random permutation of the
//! cohort (Bell et al. 2020). Members sit on a ring in permuted order and each is a neighbour
//! of the k/2 members on either side. With k = n − 1 it is the complete graph (plain SecAgg).
//!
//! The permutation is a public function of the session id, so every member and the server
//! derive the same graph without exchanging it, and the server cannot pick who neighbours
//! whom (a fresh session id per round gives a fresh placement).

use super::crypto::digest;
use super::prg::PublicStream;
use super::{MemberId, SessionId};

/// Neighbourhoods of a cohort, indexed by roster position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    neighbours: Vec<Vec<usize>>,
}

impl Graph {
    /// Builds the graph for `roster` (sorted, unique ids) of degree `degree` (even and
    /// below n − 1, or exactly n − 1). The caller validated the degree.
    pub fn new(session: &SessionId, roster: &[MemberId], degree: usize) -> Self {
        let n = roster.len();
        let order = permutation(session, n);
        let mut position = vec![0usize; n];
        for (pos, &member) in order.iter().enumerate() {
            position[member] = pos;
        }
        let neighbours = (0..n)
            .map(|member| {
                let mut list: Vec<usize> = if degree + 1 >= n {
                    (0..n).filter(|&other| other != member).collect()
                } else {
                    let half = degree / 2;
                    let pos = position[member];
                    (1..=half)
                        .flat_map(|d| [order[(pos + d) % n], order[(pos + n - d) % n]])
                        .collect()
                };
                list.sort_unstable();
                list
            })
            .collect();
        Graph { neighbours }
    }

    /// The roster positions adjacent to roster position `member`, sorted.
    pub fn neighbours(&self, member: usize) -> &[usize] {
        &self.neighbours[member]
    }

    /// Whether two roster positions are adjacent.
    pub fn adjacent(&self, a: usize, b: usize) -> bool {
        self.neighbours[a].binary_search(&b).is_ok()
    }
}

/// Fisher–Yates over a ChaCha20 stream keyed by the session: stable across platforms and
/// independent of any RNG crate's shuffle algorithm.
fn permutation(session: &SessionId, n: usize) -> Vec<usize> {
    let mut stream = PublicStream::new(digest(&[b"covey-secagg/v1/graph", &session.0]));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = stream.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(n: u32) -> Vec<MemberId> {
        (0..n).map(MemberId).collect()
    }

    #[test]
    fn harary_graph_is_k_regular_and_symmetric() {
        let g = Graph::new(&SessionId([1; 32]), &roster(50), 8);
        for a in 0..50 {
            assert_eq!(g.neighbours(a).len(), 8);
            assert!(!g.adjacent(a, a));
            for &b in g.neighbours(a) {
                assert!(g.adjacent(b, a));
            }
        }
    }

    #[test]
    fn complete_graph_when_degree_is_n_minus_one() {
        let g = Graph::new(&SessionId([1; 32]), &roster(6), 5);
        assert_eq!(g.neighbours(2), &[0, 1, 3, 4, 5]);
    }

    #[test]
    fn placement_depends_on_the_session() {
        let a = Graph::new(&SessionId([1; 32]), &roster(100), 4);
        let b = Graph::new(&SessionId([2; 32]), &roster(100), 4);
        assert_ne!(a, b);
        assert_eq!(a, Graph::new(&SessionId([1; 32]), &roster(100), 4));
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&SessionId([3; 32]), 1000);
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
