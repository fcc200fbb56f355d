//! The node's decisions, as plain functions over state and a passed-in clock: where each
//! recipient's copy goes next, how long to wait before retrying a peer, what to do with an
//! inbound packet. No sockets, no timers, no store: `runtime` performs what these decide, and
//! the tests here run without any of it.

use std::collections::BTreeMap;
use std::time::Duration;

use estafette_packet::{BureauCode, Roster};

use crate::config::RouteConfig;

/// Where one recipient's copy goes from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// To this node's own inbox.
    Local,
    /// To this peer's node.
    Peer(BureauCode),
}

/// How this node reaches every bureau: itself, static `via` routes, or directly when the roster
/// lists an address.
#[derive(Debug, Clone)]
pub struct Router {
    me: BureauCode,
    via: BTreeMap<BureauCode, BureauCode>,
    direct: BTreeMap<BureauCode, String>,
}

/// What to do with a packet's targets at this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// This node is a target: deliver to the local inbox.
    pub local: bool,
    /// Next hops, each with the targets its copy serves, in code order.
    pub hops: Vec<(BureauCode, Vec<BureauCode>)>,
    /// Targets this node cannot reach (no address and no route, or the way back would loop).
    pub unroutable: Vec<BureauCode>,
}

impl Router {
    /// A router for node `me` from its static routes and the roster's addresses.
    pub fn new(me: BureauCode, routes: &[RouteConfig], roster: &Roster) -> Self {
        let direct = roster
            .bureaus
            .iter()
            .filter(|b| b.code != me)
            .filter_map(|b| b.address.clone().map(|a| (b.code.clone(), a)))
            .collect();
        let via = routes
            .iter()
            .map(|r| (r.to.clone(), r.via.clone()))
            .collect();
        Self { me, via, direct }
    }

    /// This node's bureau.
    pub fn me(&self) -> &BureauCode {
        &self.me
    }

    /// The next hop towards `to`, if any. A static route wins over a direct address.
    pub fn next_hop(&self, to: &BureauCode) -> Option<NextHop> {
        if to == &self.me {
            return Some(NextHop::Local);
        }
        if let Some(via) = self.via.get(to) {
            return self
                .direct
                .contains_key(via)
                .then(|| NextHop::Peer(via.clone()));
        }
        self.direct
            .contains_key(to)
            .then(|| NextHop::Peer(to.clone()))
    }

    /// Where `peer`'s node listens, from the roster.
    pub fn address(&self, peer: &BureauCode) -> Option<&str> {
        self.direct.get(peer).map(String::as_str)
    }

    /// The peers this node may have to send to.
    pub fn peers(&self) -> impl Iterator<Item = &BureauCode> {
        self.direct.keys()
    }

    /// Splits `targets` by next hop. `been` are the nodes that already carried this copy (the
    /// origin and the route's hops): sending to one of them again would loop.
    pub fn plan(&self, targets: &[BureauCode], been: &[BureauCode]) -> Plan {
        let mut plan = Plan::default();
        let mut hops: BTreeMap<BureauCode, Vec<BureauCode>> = BTreeMap::new();
        for t in targets {
            match self.next_hop(t) {
                Some(NextHop::Local) => plan.local = true,
                Some(NextHop::Peer(p)) if !been.contains(&p) => {
                    hops.entry(p).or_default().push(t.clone())
                }
                _ => plan.unroutable.push(t.clone()),
            }
        }
        plan.hops = hops.into_iter().collect();
        plan
    }
}

/// Retry timing for one peer: capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to a 5 min cap (DESIGN §5): a dead peer is tried a dozen times an hour, a
    /// peer that is back is found within minutes (and at once if it connects to us).
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (≥ 1), with "equal jitter": a random
    /// point in the upper half of the exponential step, so peers that failed together do not
    /// retry together, yet never sooner than half the step. `random` is any uniform `u64`.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let step = self.min.saturating_mul(1u32 << exp).min(self.max);
        let half = step / 2;
        let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_millis(random % span)
    }
}

/// The neighbours asked to witness the checkpoint of `size`: at most `n` of `peers`, a window
/// that moves with the checkpoint so that over several checkpoints every neighbour witnesses
/// some (a stuck or dishonest witness cannot be the only one forever), in code order.
pub(crate) fn witnesses_for(peers: &[BureauCode], size: u64, n: usize) -> Vec<BureauCode> {
    let mut peers = peers.to_vec();
    peers.sort();
    if peers.len() <= n {
        return peers;
    }
    let start = usize::try_from(size % peers.len() as u64).unwrap_or(0);
    peers.iter().cycle().skip(start).take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use estafette_packet::{BureauEntry, EncryptionPublicKey, NetworkName, SigningPublicKey};

    use super::*;

    fn code(c: &str) -> BureauCode {
        BureauCode::new(c).unwrap()
    }

    fn roster() -> Roster {
        let mut r = Roster::new(NetworkName::new("t").unwrap(), 0);
        for (c, addr) in [
            ("BR", Some("a:1")),
            ("CV", Some("a:2")),
            ("GH", Some("a:3")),
            ("NG", Some("a:4")),
            ("TG", None),
        ] {
            r.bureaus.push(BureauEntry {
                code: code(c),
                name: String::new(),
                signing_key: SigningPublicKey([0; 32]),
                encryption_key: EncryptionPublicKey([0; 32]),
                address: addr.map(str::to_owned),
            });
        }
        r
    }

    fn route(to: &str, via: &str) -> RouteConfig {
        RouteConfig {
            to: code(to),
            via: code(via),
        }
    }

    #[test]
    fn routes_win_over_direct_addresses() {
        let r = Router::new(
            code("BR"),
            &[route("GH", "CV"), route("NG", "CV")],
            &roster(),
        );
        assert_eq!(r.next_hop(&code("BR")), Some(NextHop::Local));
        assert_eq!(r.next_hop(&code("GH")), Some(NextHop::Peer(code("CV"))));
        assert_eq!(r.next_hop(&code("CV")), Some(NextHop::Peer(code("CV"))));
        assert_eq!(r.next_hop(&code("TG")), None, "no address and no route");
        let r = Router::new(code("BR"), &[route("TG", "XX")], &roster());
        assert_eq!(
            r.next_hop(&code("TG")),
            None,
            "a route via an unreachable hop"
        );
    }

    #[test]
    fn a_diffusion_fans_out_once_per_next_hop() {
        let r = Router::new(
            code("BR"),
            &[route("GH", "CV"), route("NG", "CV")],
            &roster(),
        );
        let p = r.plan(
            &[code("CV"), code("GH"), code("NG"), code("TG"), code("BR")],
            &[code("BR")],
        );
        assert!(p.local);
        assert_eq!(
            p.hops,
            vec![(code("CV"), vec![code("CV"), code("GH"), code("NG")])]
        );
        assert_eq!(p.unroutable, vec![code("TG")]);
    }

    #[test]
    fn the_hub_splits_and_never_sends_back() {
        let hub = Router::new(code("CV"), &[], &roster());
        let p = hub.plan(&[code("CV"), code("GH"), code("NG")], &[code("BR")]);
        assert!(p.local);
        assert_eq!(
            p.hops,
            vec![
                (code("GH"), vec![code("GH")]),
                (code("NG"), vec![code("NG")])
            ]
        );
        // A copy that came from GH for BR goes to BR; one that claims to be for GH loops.
        let p = hub.plan(&[code("BR"), code("GH")], &[code("GH")]);
        assert_eq!(p.hops, vec![(code("BR"), vec![code("BR")])]);
        assert_eq!(p.unroutable, vec![code("GH")]);
    }

    #[test]
    fn backoff_doubles_within_bounds_with_jitter() {
        let b = Backoff::default();
        for failures in 1..40 {
            let step = b.min.saturating_mul(1 << (failures - 1).min(30)).min(b.max);
            for random in [0, 1, 12_345, u64::MAX] {
                let d = b.delay(failures, random);
                assert!(
                    d >= step / 2 && d <= step,
                    "failures {failures}: {d:?} not in [{:?}, {step:?}]",
                    step / 2
                );
                assert!(d <= b.max);
            }
        }
        assert_eq!(b.delay(1, 0), Duration::from_millis(500));
        assert!(
            b.delay(12, 7) >= Duration::from_secs(150),
            "capped at 5 min, never below half of it"
        );
    }

    fn witness_codes(c: &[&str]) -> Vec<BureauCode> {
        c.iter().copied().map(code).collect()
    }

    /// At most `n` witnesses per checkpoint, and over consecutive checkpoints every neighbour.
    #[test]
    fn witnesses_are_capped_and_rotate() {
        let peers = witness_codes(&["NG", "BR", "GH", "CV", "SN"]);
        assert_eq!(
            witnesses_for(&peers[..2], 7, 3),
            witness_codes(&["BR", "NG"])
        );
        assert!(witnesses_for(&peers, 7, 0).is_empty());
        let mut seen = Vec::new();
        for size in 0..5 {
            let w = witnesses_for(&peers, size, 3);
            assert_eq!(w.len(), 3, "{w:?}");
            seen.extend(w);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen, witness_codes(&["BR", "CV", "GH", "NG", "SN"]));
    }
}
