//! The `demo.catalog.Catalog` gRPC API used by the tonic test and examples.
//!
//! The messages are derived by hand with `prost` (no `protoc`); the client and server glue in
//! `generated.rs` is produced by `tonic_build::manual` from the description in
//! `tests/tonic/codegen.rs`, which also checks that the committed copy is current. The API, as
//! it would read in a `.proto` file:
//!
//! ```text
//! package demo.catalog;
//! service Catalog {
//!   rpc GetItem(GetItemRequest) returns (Item);
//!   rpc ListItems(ListItemsRequest) returns (stream Item);
//!   rpc UpdateItem(Item) returns (Item);
//!   rpc DeleteItem(DeleteItemRequest) returns (DeleteItemReply);
//! }
//! ```

/// Asks for one item.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetItemRequest {
    /// The item's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// Asks for a stream of `count` items.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ListItemsRequest {
    /// How many items to stream.
    #[prost(uint32, tag = "1")]
    pub count: u32,
}

/// Asks to delete one item.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteItemRequest {
    /// The item's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// The answer to a deletion.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteItemReply {}

/// An item, as the server that answered saw the call.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Item {
    /// The item's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The item's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The identity of the server that answered.
    #[prost(string, tag = "3")]
    pub served_by: String,
    /// The caller's identity as the server verified it (mTLS), empty for none.
    #[prost(string, tag = "4")]
    pub caller: String,
}

include!("generated.rs");
