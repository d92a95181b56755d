use super::*;

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MockDiscovery>();
    check::<MockUpdates>();
    check::<MockDiscoveryError>();
    check::<FixedLatency>();
    check::<FixedLatencyClient>();
    check::<LatencyFuture>();
    check::<EndpointFailed>();
    check::<ConnectRefused>();
    check::<TestCa>();
    check::<TestCert>();
    check::<CertSpec>();
    check::<TestCaError>();
}
