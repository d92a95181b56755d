//! [`Dns`] against a small in-process name server on a loopback UDP port, for what needs exact
//! control of the answers (an additional section with only some families) and a record of every
//! question asked.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use hickory_resolver::Name;
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, SRV};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use super::*;
use crate::endpoint::Endpoint;

const SRV_NAME: &str = "_x._tcp.svc.test.";
const TARGET: &str = "a.svc.test.";
const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Serves one SRV record whose target has an A and an AAAA record, with only the A record in
/// the SRV answer's additional section (as a server may send it).
struct FakeServer {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(query) = request.queries().first().cloned() else {
                    continue;
                };
                log.lock()
                    .unwrap()
                    .push((query.name().to_ascii(), query.query_type()));
                let mut response = Message::new();
                response
                    .set_id(request.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(request.op_code())
                    .set_recursion_desired(request.recursion_desired())
                    .set_authoritative(true)
                    .add_query(query.clone());
                let name = query.name().to_ascii();
                match (name.as_str(), query.query_type()) {
                    (SRV_NAME, RecordType::SRV) => {
                        let srv = SRV::new(10, 1, 80, Name::from_ascii(TARGET).unwrap());
                        response.add_answer(record(SRV_NAME, RData::SRV(srv)));
                        response.add_additional(record(TARGET, RData::A(A(V4))));
                    }
                    (TARGET, RecordType::A) => {
                        response.add_answer(record(TARGET, RData::A(A(V4))));
                    }
                    (TARGET, RecordType::AAAA) => {
                        response.add_answer(record(TARGET, RData::AAAA(AAAA(V6))));
                    }
                    _ => {
                        response.set_response_code(ResponseCode::NXDomain);
                    }
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        FakeServer { addr, asked, task }
    }

    /// The questions asked since the last call, as (name, type).
    fn take_asked(&self) -> Vec<(String, RecordType)> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(name: &str, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), 30, data)
}

fn addrs(set: &[Endpoint]) -> BTreeSet<SocketAddr> {
    set.iter().map(Endpoint::addr).collect()
}

fn sockets(ips: &[IpAddr]) -> BTreeSet<SocketAddr> {
    ips.iter().map(|ip| SocketAddr::new(*ip, 80)).collect()
}

async fn first_set(dns: &mut Dns) -> Vec<Endpoint> {
    match dns.next().await {
        Some(Ok(Update::Reset(set))) => set,
        other => panic!("expected a set, got {other:?}"),
    }
}

#[tokio::test]
async fn srv_targets_get_the_address_families_the_additional_section_lacks() {
    use RecordType::{AAAA as Aaaa, SRV as Srv};
    let server = FakeServer::start().await;
    let (v4, v6) = (IpAddr::V4(V4), IpAddr::V6(V6));
    let cases = [
        // The section has the A record; the AAAA record is looked up.
        (IpStrategy::Ipv4AndIpv6, vec![v4, v6], vec![Srv, Aaaa]),
        (IpStrategy::Ipv4Only, vec![v4], vec![Srv]),
        (IpStrategy::Ipv6Only, vec![v6], vec![Srv, Aaaa]),
        (IpStrategy::Ipv4ThenIpv6, vec![v4], vec![Srv]),
        (IpStrategy::Ipv6ThenIpv4, vec![v6], vec![Srv, Aaaa]),
    ];
    for (strategy, want, asked) in cases {
        let mut dns = Dns::srv("_x._tcp.svc.test")
            .name_servers([server.addr])
            .ip_strategy(strategy)
            .build()
            .unwrap();
        let set = first_set(&mut dns).await;
        assert_eq!(addrs(&set), sockets(&want), "{strategy:?}");
        let asked_types: Vec<RecordType> = server
            .take_asked()
            .into_iter()
            .map(|(name, rtype)| {
                let expected = if rtype == Srv { SRV_NAME } else { TARGET };
                assert_eq!(name, expected, "{strategy:?}");
                rtype
            })
            .collect();
        assert_eq!(asked_types, asked, "{strategy:?}: the questions asked");
    }
}

#[tokio::test]
async fn nothing_is_sent_until_the_stream_is_polled() {
    let server = FakeServer::start().await;
    let mut dns = Dns::srv("_x._tcp.svc.test")
        .name_servers([server.addr])
        .build()
        .unwrap();
    // Give anything the build might have started every chance to run: the server task
    // answers (and records) whatever reaches its socket meanwhile.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        server.take_asked(),
        Vec::new(),
        "a question before the first poll"
    );
    let set = first_set(&mut dns).await;
    assert_eq!(set.len(), 2);
    let asked = server.take_asked();
    assert_eq!(asked.first(), Some(&(SRV_NAME.to_owned(), RecordType::SRV)));
}
