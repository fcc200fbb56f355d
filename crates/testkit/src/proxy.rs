//! A user-space UDP proxy that stands in for a network link: it forwards datagrams both ways,
//! can be told to drop everything (a partition) and to heal, and can impair the link: drop,
//! duplicate and delay datagrams at random (random delays reorder them), from a seed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// How a link misbehaves, per datagram and each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    /// Datagrams dropped, per thousand.
    pub drop_per_mille: u64,
    /// Datagrams sent twice, per thousand.
    pub duplicate_per_mille: u64,
    /// Each copy is delayed by a random time up to this; different delays reorder datagrams.
    pub max_delay: Duration,
}

/// The impairment and its random source.
#[derive(Debug)]
struct Faults {
    impairment: Impairment,
    state: u64,
}

impl Faults {
    fn next(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.state >> 33
    }

    /// The delays of the copies of one datagram to send (none: dropped).
    fn plan(&mut self) -> Vec<Duration> {
        let i = self.impairment;
        if i == Impairment::default() {
            return vec![Duration::ZERO];
        }
        if self.next() % 1000 < i.drop_per_mille {
            return Vec::new();
        }
        let copies = if self.next() % 1000 < i.duplicate_per_mille {
            2
        } else {
            1
        };
        let max = u64::try_from(i.max_delay.as_micros()).unwrap_or(u64::MAX);
        (0..copies)
            .map(|_| Duration::from_micros(if max == 0 { 0 } else { self.next() % max }))
            .collect()
    }
}

type Shared = Arc<Mutex<Faults>>;

/// Sends `data` to `to` through `socket` as the faults say: dropped, once or twice, at once or
/// after a delay.
async fn forward(faults: &Shared, socket: &Arc<UdpSocket>, data: &[u8], to: Option<SocketAddr>) {
    let plan = faults.lock().unwrap_or_else(PoisonError::into_inner).plan();
    for delay in plan {
        let send = {
            let (socket, data) = (socket.clone(), data.to_vec());
            async move {
                let _ = match to {
                    Some(to) => socket.send_to(&data, to).await,
                    None => socket.send(&data).await,
                };
            }
        };
        if delay.is_zero() {
            send.await;
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send.await;
            });
        }
    }
}

/// Forwards UDP between clients and one target, like a NAT; `cut` drops every datagram.
pub struct UdpProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    faults: Shared,
    _tasks: JoinSet<()>,
}

impl UdpProxy {
    /// Starts a proxy on a free loopback port towards `target`. Needs a tokio runtime.
    pub fn start(target: SocketAddr) -> Self {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind proxy");
        std_socket.set_nonblocking(true).expect("nonblocking");
        let addr = std_socket.local_addr().expect("proxy address");
        let front = Arc::new(UdpSocket::from_std(std_socket).expect("tokio socket"));
        let cut = Arc::new(AtomicBool::new(false));
        let faults: Shared = Arc::new(Mutex::new(Faults {
            impairment: Impairment::default(),
            state: 0,
        }));
        let mut tasks = JoinSet::new();
        let (front2, cut2, faults2) = (front.clone(), cut.clone(), faults.clone());
        tasks.spawn(async move {
            let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut back_tasks = JoinSet::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, client)) = front2.recv_from(&mut buf).await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    continue;
                }
                let up = match upstreams.get(&client) {
                    Some(up) => up.clone(),
                    None => {
                        let Ok(up) = UdpSocket::bind("127.0.0.1:0").await else {
                            continue;
                        };
                        if up.connect(target).await.is_err() {
                            continue;
                        }
                        let up = Arc::new(up);
                        upstreams.insert(client, up.clone());
                        let (up2, front3, cut3, faults3) =
                            (up.clone(), front2.clone(), cut2.clone(), faults2.clone());
                        back_tasks.spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = up2.recv(&mut buf).await {
                                if !cut3.load(Ordering::SeqCst) {
                                    forward(&faults3, &front3, &buf[..n], Some(client)).await;
                                }
                            }
                        });
                        up
                    }
                };
                forward(&faults2, &up, &buf[..n], None).await;
            }
        });
        Self {
            addr,
            cut,
            faults,
            _tasks: tasks,
        }
    }

    /// The address clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram, both ways, until [`UdpProxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Impairs the link from now on, drawing from `seed` (print it: a failure can be replayed
    /// only roughly, since timing decides which datagram meets which draw).
    pub fn impair(&self, impairment: Impairment, seed: u64) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = Faults {
            impairment,
            state: seed,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_happen_at_about_their_rates() {
        let mut f = Faults {
            impairment: Impairment {
                drop_per_mille: 100,
                duplicate_per_mille: 200,
                max_delay: Duration::from_millis(20),
            },
            state: 7,
        };
        let plans: Vec<Vec<Duration>> = (0..10_000).map(|_| f.plan()).collect();
        let dropped = plans.iter().filter(|p| p.is_empty()).count();
        let doubled = plans.iter().filter(|p| p.len() == 2).count();
        assert!((800..1200).contains(&dropped), "{dropped} dropped");
        // Duplicates are drawn among the datagrams not dropped (9,000 × 20 %).
        assert!((1500..2100).contains(&doubled), "{doubled} doubled");
        let delays: Vec<Duration> = plans.iter().flatten().copied().collect();
        assert!(delays.iter().all(|d| *d < Duration::from_millis(20)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(10)));
        // No impairment: every datagram once, at once.
        f.impairment = Impairment::default();
        assert_eq!(f.plan(), vec![Duration::ZERO]);
    }
}
