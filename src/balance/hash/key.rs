//! Request keys and their stable 64-bit hash.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::Arc;

/// The stable 64-bit hash of a request key: XXH3-64 with seed 0 of the key's bytes.
///
/// This value decides where a key lands, so it is part of the crate's stability promise: the
/// same key bytes give the same `KeyHash` in every process, on every platform (the algorithm
/// reads its input as little-endian words whatever the CPU), and in every version of this
/// crate. Changing it would be a breaking change, announced in the changelog. XXH3's output is
/// frozen since xxHash 0.8.0 (2020) and specified in
/// [`xxhash_spec.md`](https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md), so a
/// client in another language computes the same value with its own xxHash binding
/// (`XXH3_64bits`).
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::hash::KeyHash;
///
/// // XXH3-64 of the empty input, as published by the xxHash authors.
/// assert_eq!(KeyHash::of_bytes(b"").get(), 0x2D06_8005_38D3_94C2);
/// assert_eq!(KeyHash::of(&"user-42"), KeyHash::of_bytes(b"user-42"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyHash(u64);

impl KeyHash {
    /// The hash of these bytes.
    #[inline]
    pub fn of_bytes(bytes: &[u8]) -> Self {
        KeyHash(xxhash_rust::xxh3::xxh3_64(bytes))
    }

    /// The hash of a key (see [`HashKey`] for how each key type turns into bytes).
    #[inline]
    pub fn of<K: HashKey + ?Sized>(key: &K) -> Self {
        key.key_hash()
    }

    /// A hash computed elsewhere, used as is. Use it to route by a hash your system already
    /// agrees on; it then bypasses XXH3 entirely.
    #[inline]
    pub const fn from_u64(hash: u64) -> Self {
        KeyHash(hash)
    }

    /// The hash as a number: a position in the 64-bit hash space.
    #[inline]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({:#018x})", self.0)
    }
}

/// A value that can serve as a request key: something with a defined byte representation.
///
/// Byte strings (`[u8]`, `str`, `String`, `Vec<u8>`, arrays) hash their bytes as they are.
/// Integers hash their **little-endian** bytes at their own width, so `7u32` and `7u64` are
/// different keys; `usize` and `isize` are deliberately not keys, because their width differs
/// between platforms and the hash must not. IP addresses hash their octets in network order (4
/// or 16 bytes). A [`KeyHash`] is used as is.
///
/// Implement it for your own key types by choosing their bytes and calling
/// [`KeyHash::of_bytes`]; keep that choice fixed, since changing it moves every key.
pub trait HashKey {
    /// The key's stable hash.
    fn key_hash(&self) -> KeyHash;
}

/// Turns a request into the hash of its key, or `None` when it has no key.
///
/// Every closure `Fn(&Req) -> Option<K>` with `K:` [`HashKey`] is an extractor, which covers
/// keys owned by value (an id, a copied string). An extractor whose key borrows from the
/// request (a header's bytes, a path) implements this trait directly, hashing the borrowed
/// bytes with [`KeyHash::of_bytes`], so extracting a key never allocates.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::hash::{ExtractKey, KeyHash};
///
/// struct Request { user: Option<u64>, path: String }
///
/// // A closure returning an owned key.
/// let by_user = |req: &Request| req.user;
///
/// // A borrowing extractor: hashes the path in place.
/// struct ByPath;
/// impl ExtractKey<Request> for ByPath {
///     fn key_hash(&self, req: &Request) -> Option<KeyHash> {
///         Some(KeyHash::of_bytes(req.path.as_bytes()))
///     }
/// }
///
/// let req = Request { user: Some(7), path: "/a".into() };
/// assert_eq!(by_user.key_hash(&req), Some(KeyHash::of(&7u64)));
/// assert_eq!(ByPath.key_hash(&req), Some(KeyHash::of("/a")));
/// ```
pub trait ExtractKey<Req>: Send + Sync + 'static {
    /// The hash of `req`'s key, or `None` if it has none.
    fn key_hash(&self, req: &Req) -> Option<KeyHash>;
}

impl<Req, F, K> ExtractKey<Req> for F
where
    F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
    K: HashKey,
{
    #[inline]
    fn key_hash(&self, req: &Req) -> Option<KeyHash> {
        self(req).map(|key| key.key_hash())
    }
}

impl HashKey for KeyHash {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        *self
    }
}

impl HashKey for [u8] {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(self)
    }
}

impl<const N: usize> HashKey for [u8; N] {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(self)
    }
}

impl HashKey for Vec<u8> {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(self)
    }
}

impl HashKey for str {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(self.as_bytes())
    }
}

impl HashKey for String {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(self.as_bytes())
    }
}

impl<T: HashKey + ?Sized> HashKey for &T {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        (**self).key_hash()
    }
}

impl<T: HashKey + ?Sized> HashKey for Box<T> {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        (**self).key_hash()
    }
}

impl<T: HashKey + ?Sized> HashKey for Arc<T> {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        (**self).key_hash()
    }
}

impl<T: HashKey + ?Sized> HashKey for Rc<T> {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        (**self).key_hash()
    }
}

impl<T> HashKey for Cow<'_, T>
where
    T: HashKey + ToOwned + ?Sized,
{
    #[inline]
    fn key_hash(&self) -> KeyHash {
        (**self).key_hash()
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl HashKey for $t {
            /// The hash of the integer's little-endian bytes.
            #[inline]
            fn key_hash(&self) -> KeyHash {
                KeyHash::of_bytes(&self.to_le_bytes())
            }
        }
    )*};
}

int_keys!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl HashKey for Ipv4Addr {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(&self.octets())
    }
}

impl HashKey for Ipv6Addr {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        KeyHash::of_bytes(&self.octets())
    }
}

impl HashKey for IpAddr {
    #[inline]
    fn key_hash(&self) -> KeyHash {
        match self {
            IpAddr::V4(ip) => ip.key_hash(),
            IpAddr::V6(ip) => ip.key_hash(),
        }
    }
}
