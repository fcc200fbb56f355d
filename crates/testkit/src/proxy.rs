//! A user-space UDP proxy that stands in for a network link: it forwards datagrams both ways,
//! and can be told to drop everything (a partition) and to heal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// Forwards UDP between clients and one target, like a NAT; `cut` drops every datagram.
pub struct UdpProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
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
        let mut tasks = JoinSet::new();
        let (front2, cut2) = (front.clone(), cut.clone());
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
                        let (up2, front3, cut3) = (up.clone(), front2.clone(), cut2.clone());
                        back_tasks.spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = up2.recv(&mut buf).await {
                                if !cut3.load(Ordering::SeqCst) {
                                    let _ = front3.send_to(&buf[..n], client).await;
                                }
                            }
                        });
                        up
                    }
                };
                let _ = up.send(&buf[..n]).await;
            }
        });
        Self {
            addr,
            cut,
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
}
