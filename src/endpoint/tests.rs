use super::*;

#[test]
fn zero_weight_is_refused_naming_the_value() {
    let err = Weight::new(0).unwrap_err();
    assert_eq!(err.value(), "0");
    assert!(err.to_string().contains('0'), "{err}");
    let err = "-3".parse::<Weight>().unwrap_err();
    assert_eq!(err.value(), "-3");
    assert!("abc".parse::<Weight>().is_err());
    assert_eq!(" 0\n".parse::<Weight>().unwrap_err().value(), " 0\n");
    assert_eq!("7".parse::<Weight>().unwrap().get(), 7);
}

#[test]
fn builder_sets_metadata_and_key_is_address() {
    let addr: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let ep = Endpoint::new(addr)
        .with_weight(Weight::new(5).unwrap())
        .with_zone("z1")
        .with_label("b", "2")
        .with_label("a", "1")
        .with_label("a", "3")
        .with_identity("spiffe://td/ns/x");
    assert_eq!(ep.key(), addr);
    assert_eq!(ep.weight().get(), 5);
    assert_eq!(ep.zone(), Some("z1"));
    assert_eq!(ep.labels().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
    assert_eq!(ep.identity(), Some("spiffe://td/ns/x"));
    assert_eq!(Endpoint::from(addr).weight(), Weight::ONE);
    assert_ne!(Endpoint::from(addr), ep);
}
