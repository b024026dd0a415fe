//! What the server sees of one member: its masked vector must look uniform whatever the
//! input, so the statistics below cannot tell an all-zero input from an all-ones one.

use covey_protocol::secagg::{
    Client, ClientBody, MemberId, Server, ServerStep, SessionId, SessionParams,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const M: usize = 1 << 16;

/// Runs a 9-member session to the masked-input stage and returns member 0's upload.
fn masked_vector_of_member_zero(bits: u32, input_value: u32, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let params = SessionParams {
        session_id: SessionId([seed as u8; 32]),
        bits,
        dimension: M,
        degree: 4,
        threshold: 2,
        roster: (0..9).map(MemberId).collect(),
        signing_keys: None,
    };
    let mut server = Server::new(params.clone()).unwrap();
    let mut clients = Vec::new();
    for member in &params.roster {
        let input = vec![input_value; M];
        let (client, hello) = Client::new(params.clone(), *member, &input, None, &mut rng).unwrap();
        server.receive(&hello).unwrap();
        clients.push(client);
    }
    for _ in 0..2 {
        let ServerStep::Send(messages) = server.close_stage().unwrap() else {
            panic!("finished early")
        };
        for message in messages {
            let reply = clients[message.recipient.0 as usize]
                .handle(&message)
                .unwrap();
            if let ClientBody::MaskedInput { values, .. } = &reply.body
                && reply.sender == MemberId(0)
            {
                return values.clone();
            }
            server.receive(&reply).unwrap();
        }
    }
    panic!("member 0 never masked its input")
}

/// Pearson chi-square statistic of `counts` against the uniform distribution.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Upper critical value for `df` degrees of freedom at roughly p = 1e-6 (Wilson–Hilferty).
fn critical(df: f64) -> f64 {
    let z = 4.75;
    df * (1.0 - 2.0 / (9.0 * df) + z * (2.0 / (9.0 * df)).sqrt()).powi(3)
}

#[test]
fn masked_bytes_are_uniform_for_extreme_inputs() {
    for (input, seed) in [(0u32, 1u64), (255, 2)] {
        let masked = masked_vector_of_member_zero(8, input, seed);
        let mut counts = vec![0u64; 256];
        masked.iter().for_each(|&v| counts[v as usize] += 1);
        let stat = chi_square(&counts);
        assert!(stat < critical(255.0), "input {input}: chi2 = {stat}");
    }
}

#[test]
fn consecutive_coordinates_are_independent() {
    // Serial test on pairs of 4-bit values: 256 cells.
    let masked = masked_vector_of_member_zero(4, 15, 3);
    let mut counts = vec![0u64; 256];
    masked
        .chunks_exact(2)
        .for_each(|p| counts[(p[0] * 16 + p[1]) as usize] += 1);
    let stat = chi_square(&counts);
    assert!(stat < critical(255.0), "chi2 = {stat}");
}

#[test]
fn one_bit_inputs_are_hidden_bit_by_bit() {
    let masked = masked_vector_of_member_zero(1, 1, 4);
    let ones = masked.iter().filter(|&&v| v == 1).count() as f64;
    let sd = (M as f64 * 0.25).sqrt();
    assert!((ones - M as f64 / 2.0).abs() < 5.0 * sd, "ones = {ones}");
}

#[test]
fn the_statistics_do_catch_an_unmasked_vector() {
    // Guard against a vacuous test: a constant vector must fail the same check.
    let mut counts = vec![0u64; 256];
    counts[0] = M as u64;
    assert!(chi_square(&counts) > critical(255.0));
    let skewed: Vec<u64> = (0..256).map(|i| if i < 128 { 300 } else { 212 }).collect();
    assert!(chi_square(&skewed) > critical(255.0));
}
