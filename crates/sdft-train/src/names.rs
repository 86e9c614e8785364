//! The named values of config keys (`lr_scheduler`, `loss_normalization`,
//! `response_column`), parsed one way wherever they come from. The serde names of
//! the enums ([`crate::schedule::Decay`], [`crate::loss::LossNormalization`],
//! [`crate::ResponseColumn`]) are the only spelling: config files read them
//! through `deserialize` (a `#[serde(deserialize_with)]` helper), command-line flags through the enums'
//! [`std::str::FromStr`], and both go through [`parse`], whose error names the key
//! and the accepted values.
//!
//! ```
//! use sdft_train::names;
//! use sdft_train::schedule::Decay;
//!
//! assert_eq!("linear".parse::<Decay>().unwrap(), Decay::Linear);
//! assert_eq!(names::accepted::<Decay>(), ["constant", "linear", "cosine"]);
//! let e = names::parse::<Decay>("step").unwrap_err().to_string();
//! assert_eq!(
//!     e,
//!     "config key `lr_scheduler`: expected constant, linear or cosine, found \"step\""
//! );
//! ```

use serde::de::value::Error as ValueError;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// An enum whose serde names are the values of one config key.
pub trait NamedValue: DeserializeOwned + Serialize {
    /// The config key (and, with `-` for `_`, the flag) the value belongs to.
    const KEY: &'static str;
}

/// Parses `s` by `T`'s serde names; the error names `T::KEY` and the names
/// accepted ([`accepted`]).
pub fn parse<T: NamedValue>(s: &str) -> Result<T> {
    T::deserialize(IntoDeserializer::<ValueError>::into_deserializer(s))
        .map_err(|_| Error::config(T::KEY, &expected::<T>(), format!("{s:?}")))
}

/// The serde names of `T`'s variants, in declaration order (aliases left out).
pub fn accepted<T: NamedValue>() -> Vec<&'static str> {
    let mut variants: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut variants));
    // Aliases are listed with the names; a name is canonical when it is what the
    // value it parses to serializes as.
    variants
        .iter()
        .copied()
        .filter(|n| {
            T::deserialize(IntoDeserializer::<ValueError>::into_deserializer(*n))
                .ok()
                .and_then(|v| serde_json::to_value(v).ok())
                .is_some_and(|v| v == *n)
        })
        .collect()
}

/// `a, b or c`.
fn expected<T: NamedValue>() -> String {
    match accepted::<T>().split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "a name".to_string(),
    }
}

/// `#[serde(deserialize_with = "crate::names::deserialize")]`: a config file's
/// value read through [`parse`], so that its error is the flag's.
pub(crate) fn deserialize<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: NamedValue,
{
    let s = String::deserialize(d)?;
    parse(&s).map_err(de::Error::custom)
}

/// A deserializer that only records the variant names an enum asks for.
struct Probe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, ValueError> {
        Err(de::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, ValueError> {
        *self.0 = variants;
        Err(de::Error::custom("names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// `FromStr` (through [`parse`]) and `Display` (the serde name) of a
/// [`NamedValue`].
macro_rules! named_value {
    ($t:ty, $key:literal) => {
        impl $crate::names::NamedValue for $t {
            const KEY: &'static str = $key;
        }

        impl std::str::FromStr for $t {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<Self> {
                $crate::names::parse(s)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => write!(f, "{self:?}"),
                }
            }
        }
    };
}
pub(crate) use named_value;

#[cfg(test)]
mod tests {
    use crate::loss::LossNormalization;
    use crate::schedule::Decay;
    use crate::ResponseColumn;

    use super::*;

    #[test]
    fn every_named_key_parses_its_serde_names_and_names_itself_in_errors() {
        assert_eq!(
            accepted::<LossNormalization>(),
            ["token", "micro-batch"],
            "the alias micro_batch is accepted but not listed"
        );
        assert_eq!(
            "micro_batch".parse::<LossNormalization>().unwrap(),
            LossNormalization::MicroBatch
        );
        assert_eq!(accepted::<ResponseColumn>(), ["response", "output"]);
        let e = "answer".parse::<ResponseColumn>().unwrap_err().to_string();
        assert_eq!(
            e,
            "config key `response_column`: expected response or output, found \"answer\""
        );
        let e = "mean".parse::<LossNormalization>().unwrap_err().to_string();
        assert!(e.contains("`loss_normalization`") && e.contains("token or micro-batch"));
        for d in [Decay::Constant, Decay::Linear, Decay::Cosine] {
            assert_eq!(d.to_string().parse::<Decay>().unwrap(), d);
        }
    }
}
