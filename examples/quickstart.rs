//! Quick start: load-balance real HTTP/1 requests over three local backends with every picker.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! What it shows, top to bottom:
//!
//! 1. three hyper HTTP/1 servers on ephemeral ports of 127.0.0.1, each answering every request
//!    with its own name; `backend-c` is given weight 3;
//! 2. the *endpoint client*: a `MakeService<Endpoint>` (a plain `tower::service_fn`) that opens
//!    one hyper HTTP/1 connection per endpoint and wraps it in `tower::buffer::Buffer`, because
//!    a balancer's clients must be `Clone + Send + Sync` and hyper's `SendRequest` is not `Clone`;
//! 3. one [`Balance`] per picker (`RoundRobin`, `Random`, `Weighted`, `WeightedRandom`) over a
//!    [`Static`] endpoint list, each sending 1,000 `GET /` requests and counting who answered;
//! 4. a table of the counts. Seeded pickers make the output the same on every run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, client, server};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tower::buffer::Buffer;
use tower::{Service, ServiceExt};
use tower_mesh::BoxError; // = Box<dyn std::error::Error + Send + Sync>
use tower_mesh::balance::{Balance, PickRequest, Random, RoundRobin, Weighted, WeightedRandom};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::{Endpoint, Weight};

/// The backends' names, in address order (see `main`).
const NAMES: [&str; 3] = ["backend-a", "backend-b", "backend-c"];
/// The backend with weight 3; the others have the default weight 1.
const HEAVY: &str = "backend-c";
/// Requests sent through each balancer.
const REQUESTS: usize = 1_000;

/// The request type the balancers carry: a bodiless HTTP request.
type Req = Request<Empty<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 1. Three backends. Bind first, then name them in port order: the balancer orders its
    //    endpoints by address, so this keeps the seeded table identical from run to run.
    let mut listeners = Vec::new();
    for _ in NAMES {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listeners.push((listener.local_addr()?, listener));
    }
    listeners.sort_by_key(|(addr, _)| *addr);
    let mut endpoints = Vec::new();
    for ((addr, listener), name) in listeners.into_iter().zip(NAMES) {
        let mut endpoint = Endpoint::new(addr);
        if name == HEAVY {
            endpoint = endpoint.with_weight(Weight::new(3)?);
        }
        endpoints.push(endpoint);
        tokio::spawn(serve(listener, name));
    }
    // `Static` is `Clone`: one list feeds all four balancers.
    let endpoints = Static::new(endpoints);

    // 2-3. One balancer per picker, each seeded so the run is reproducible.
    let round_robin = count(RoundRobin::with_seed(1), &endpoints).await?;
    let random = count(Random::with_seed(1), &endpoints).await?;
    let weighted = count(Weighted::with_seed(1), &endpoints).await?;
    let weighted_random = count(WeightedRandom::with_seed(1), &endpoints).await?;
    let rows = [
        ("RoundRobin", round_robin),
        ("Random", random),
        ("Weighted", weighted),
        ("WeightedRandom", weighted_random),
    ];

    // 4. The table.
    println!("{REQUESTS} requests per picker; {HEAVY} has weight 3, the others weight 1\n");
    print!("{:<16}", "picker");
    for name in NAMES {
        let header = if name == HEAVY {
            format!("{name} (w=3)")
        } else {
            name.to_owned()
        };
        print!("{header:>17}");
    }
    println!();
    for (picker, served) in &rows {
        print!("{picker:<16}");
        for name in NAMES {
            print!("{:>17}", served.get(name).copied().unwrap_or(0));
        }
        println!();
    }
    println!(
        "\nRoundRobin and Random ignore weights (~1/3 each); Weighted and WeightedRandom give \
         {HEAVY} ~3/5\n(Weighted exactly 3 of every 5 requests, WeightedRandom 3/5 on average)."
    );
    Ok(())
}

/// Sends [`REQUESTS`] requests through a balancer using `picker` and counts, per backend name,
/// how many each backend answered.
async fn count<P>(picker: P, endpoints: &Static) -> Result<HashMap<String, usize>, BoxError>
where
    P: PickRequest<Req>,
{
    // The endpoint client factory: called once per endpoint, on the balancer's background task.
    let make_client = tower::service_fn(|ep: Endpoint| async move {
        let stream = TcpStream::connect(ep.addr()).await?;
        let (sender, connection) = client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection to {ep} failed: {e}");
            }
        });
        // `Buffer` makes the single connection shareable (Clone + Send + Sync).
        Ok::<_, BoxError>(Buffer::new(Http1(sender), 64))
    });
    let mut balance = Balance::builder(picker).build(endpoints.clone(), make_client)?;
    wait_for_all(&balance, NAMES.len()).await?;

    let mut served = HashMap::new();
    for _ in 0..REQUESTS {
        let request = Request::get("/").body(Empty::new())?;
        let response = balance.ready().await?.call(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        *served.entry(String::from_utf8(body.to_vec())?).or_insert(0) += 1;
    }
    Ok(served)
}

/// `ready()` resolves as soon as *one* endpoint has a client. Wait until all `n` do, so the
/// first requests are not all sent to whichever connection happened to open first.
async fn wait_for_all<P, S>(balance: &Balance<P, S>, n: usize) -> Result<(), BoxError>
where
    P: tower_mesh::balance::Pick,
{
    tokio::time::timeout(Duration::from_secs(5), async {
        while balance.ready_len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await?;
    Ok(())
}

/// A hyper HTTP/1 connection as a `tower::Service`: `poll_ready` waits until the connection
/// can take the next request, so the `Buffer` in front of it never overruns it.
struct Http1(SendRequest<Empty<Bytes>>);

impl Service<Req> for Http1 {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// A backend: answers every request on `listener` with `name`.
async fn serve(listener: TcpListener, name: &'static str) {
    while let Ok((stream, _)) = listener.accept().await {
        let reply = hyper::service::service_fn(move |_: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
        });
        let connection =
            server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), reply);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("{name}: {e}");
            }
        });
    }
}
