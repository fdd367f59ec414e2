//! Byzantine outliers: peers whose support is more than 2σ below the mean support of the
//! others, at most `floor(n × faultTolerance)` of them.
//!
//! **Support** is the attention a peer receives from the *other* peers, averaged over heads and
//! queries: its weight, with self-attention excluded (an agent agreeing with itself is no
//! evidence). A planted or off-topic output shares nothing with the rest, so the others put
//! little attention on it.
//!
//! **Why "of the others".** Measured against the mean and σ of all n supports, a single point can
//! never lie more than `(n−1)/√n` σ from the mean: below 2σ for n ≤ 5, so the seed's five peers
//! could never flag anyone. Each candidate is therefore compared with the peers that remain once
//! it is set aside (an externally studentised test), and several outliers are found the way
//! Rosner's generalised ESD test finds them: set aside the lowest-support peer, test it against
//! the rest, repeat up to the cap, and flag the longest prefix whose last member passed, so a
//! second outlier cannot mask the first by inflating σ.
//!
//! **Small n.** With four peers the spread comes from three supports, so the test is coarse:
//! with the lexical embedder, the honest 2-against-2 Express/Fastify debate (no planted output)
//! flags the Fastify coder whose text shares fewest words with its camp-mate (support 0.15
//! against 0.24-0.31). Read a flag at small n as "receives far less attention than the
//! others", which is what it measures, not as proof of malice.
//!
//! **σ floor.** Set against a handful of others that happen to agree closely, the leave-one-out
//! test is very sensitive: supports of 0.19 against 0.20, 0.20, 0.20, 0.21 would flag the 0.19,
//! and when the others agree exactly (σ = 0) rounding noise would. σ is therefore taken as at
//! least 10% of the others' mean support: an outlier receives at least 20% less attention than
//! the others do on average, whatever their spread.

/// How many standard deviations below the mean support makes an outlier.
pub const OUTLIER_SIGMAS: f64 = 2.0;
/// The σ used is at least this share of the others' mean support.
pub const SIGMA_FLOOR: f64 = 0.1;

/// One flagged peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub index: usize,
    pub support: f64,
    /// Mean support of the others minus 2σ: the peer's support was below this.
    pub threshold: f64,
}

/// Peers more than [`OUTLIER_SIGMAS`] σ below the others' mean support, at most `max` of them,
/// lowest support first.
pub fn byzantine(support: &[f64], max: usize) -> Vec<Outlier> {
    let mut remaining: Vec<usize> = (0..support.len()).collect();
    let mut tested = Vec::new();
    let mut flagged = 0;
    for k in 1..=max {
        if remaining.len() < 3 {
            break; // a candidate needs at least two others to measure a spread against
        }
        // Lowest support; ties go to the later peer, so the earlier one is kept.
        let at = (0..remaining.len())
            .min_by(|&a, &b| {
                support[remaining[a]].total_cmp(&support[remaining[b]]).then(remaining[b].cmp(&remaining[a]))
            })
            .unwrap_or(0);
        let cand = remaining.remove(at);
        let rest: Vec<f64> = remaining.iter().map(|&i| support[i]).collect();
        let mean = rest.iter().sum::<f64>() / rest.len() as f64;
        let sd = (rest.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / rest.len() as f64).sqrt();
        let threshold = mean - OUTLIER_SIGMAS * sd.max(SIGMA_FLOOR * mean);
        if support[cand] < threshold {
            flagged = k;
        }
        tested.push(Outlier { index: cand, support: support[cand], threshold });
    }
    tested.truncate(flagged);
    tested
}

/// `floor(n × fault_tolerance)`, the most outliers that may be flagged.
pub fn cap(n: usize, fault_tolerance: f64) -> usize {
    (n as f64 * fault_tolerance + 1e-9).floor() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_low_peer_among_five_is_flagged_though_no_point_is_2_sigma_from_the_mean_of_all() {
        let s = [0.23, 0.24, 0.05, 0.25, 0.23];
        let all_mean = s.iter().sum::<f64>() / 5.0;
        let all_sd = (s.iter().map(|x| (x - all_mean).powi(2)).sum::<f64>() / 5.0).sqrt();
        assert!((all_mean - s[2]) / all_sd < 2.0, "the naive test could not flag it");
        let out = byzantine(&s, cap(5, 0.33));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].index, 2);
        assert!(out[0].threshold > 0.18 && out[0].threshold < 0.2, "the σ floor sets it: {out:?}");
    }

    #[test]
    fn no_outlier_when_supports_are_close() {
        assert!(byzantine(&[0.2, 0.21, 0.19, 0.2, 0.2], 1).is_empty());
        assert!(byzantine(&[0.25; 4], 1).is_empty(), "equal supports never flag");
        assert!(byzantine(&[0.25, 0.25, 0.25, 0.2499], 1).is_empty(), "a 0.04% gap is noise, not dissent");
        assert!(byzantine(&[0.25, 0.25, 0.25, 0.21], 1).is_empty(), "16% below is under the 20% floor");
        assert_eq!(byzantine(&[0.25, 0.25, 0.25, 0.19], 1).len(), 1, "24% below is over it");
    }

    #[test]
    fn the_cap_limits_how_many_are_flagged() {
        let s = [0.2, 0.2, 0.21, 0.19, 0.01, 0.02, 0.2, 0.2, 0.2];
        assert!(byzantine(&s, 0).is_empty());
        let one = byzantine(&s, 1);
        assert_eq!(one.iter().map(|o| o.index).collect::<Vec<_>>(), vec![4]);
        let two = byzantine(&s, cap(9, 0.33));
        assert_eq!(two.iter().map(|o| o.index).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn two_outliers_do_not_mask_each_other() {
        // Tested against all the others, the first 0.05 is not 2σ below them (its twin inflates
        // σ); once the first is set aside the second is far below, so both are flagged.
        let s = [0.2, 0.21, 0.19, 0.2, 0.05, 0.05];
        let out = byzantine(&s, 2);
        assert_eq!(out.iter().map(|o| o.index).collect::<Vec<_>>(), vec![5, 4]);
        assert!(out[0].support > out[0].threshold, "the first test alone failed: {out:?}");
        assert!(byzantine(&s, 1).is_empty(), "with a cap of one, the masked test flags nobody");
    }

    #[test]
    fn too_few_peers_flag_nobody_and_the_cap_floors() {
        assert!(byzantine(&[0.9, 0.1], 1).is_empty());
        assert_eq!(cap(5, 0.33), 1);
        assert_eq!(cap(3, 0.33), 0);
        assert_eq!(cap(100, 0.33), 33);
        assert_eq!(cap(10, 0.3), 3, "0.3 × 10 is 3 despite rounding");
    }
}
