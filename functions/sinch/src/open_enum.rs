//! Open enums: Sinch adds status values, channels and reason codes over time. A value we do not
//! know yet must not make a whole callback unreadable, so every such enum has an `Other` variant
//! that keeps the string as received.

/// Declares an enum of known wire strings plus `Other(String)`, with serde, `as_str`, `KNOWN`
/// and `Display`. Exported for the crates that type other open sets the same way.
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( #[doc = concat!("`", $wire, "`.")] $(#[$vmeta])* $variant, )*
            /// A value this version does not know, kept as received.
            Other(String),
        }

        impl $name {
            /// Every wire string this version knows, in declaration order.
            pub const KNOWN: &'static [&'static str] = &[$($wire),*];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $( $wire => $name::$variant, )*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        /// Compares with a wire string (a status as Sinch writes it).
        impl PartialEq<&str> for $name {
            fn eq(&self, wire: &&str) -> bool {
                self.as_str() == *wire
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok($name::from(text.as_ref()))
            }
        }
    };
}

pub(crate) use crate::open_enum;
