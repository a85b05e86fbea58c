//! How the wire types of `ext.rs` are declared, and (for tests) what they look like.
//!
//! `wire_struct!`, `wire_enum!` and `wire_union!` declare a wire type once: the Rust
//! type with its serde attributes (camelCase names), plus, in test builds, a
//! description of its fields (`Describe`) and sample values (`Sample`). The
//! description is taken from the same field list the struct is made of, so it cannot
//! forget a field; `tests/wire_types.rs` serializes the samples to prove it matches
//! what serde actually sends (names, which fields may be absent, which may be null)
//! and then holds the editor clients' type declarations against it.

/// Declares wire structs: serde camelCase, every field public. Field attributes
/// (`#[serde(skip_serializing_if = ...)]`, docs) pass through unchanged.
macro_rules! wire_struct {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        #[cfg(test)]
        impl super::shape::Describe for $name {
            fn ty() -> super::shape::Ty {
                super::shape::Ty::Named(stringify!($name))
            }
            fn register(reg: &mut super::shape::Registry) {
                if reg.types.contains_key(stringify!($name)) {
                    return;
                }
                let fields = vec![$(super::shape::FieldDef {
                    name: stringify!($field),
                    ty: <$ty as super::shape::Describe>::ty(),
                }),*];
                let samples = vec![
                    super::shape::to_json(&<Self as super::shape::Sample>::full()),
                    super::shape::to_json(&<Self as super::shape::Sample>::sparse()),
                ];
                reg.types.insert(
                    stringify!($name),
                    super::shape::TypeInfo { def: super::shape::Def::Struct(fields), samples },
                );
                $(<$ty as super::shape::Describe>::register(reg);)*
            }
        }

        #[cfg(test)]
        impl super::shape::Sample for $name {
            fn full() -> Self {
                $name { $($field: super::shape::Sample::full(),)* }
            }
            fn sparse() -> Self {
                $name { $($field: super::shape::Sample::sparse(),)* }
            }
        }
    )*};
}

/// Declares wire enums of plain strings: `Name { Variant = "wire", ... }`.
macro_rules! wire_enum {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident { $($variant:ident = $wire:literal),+ $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The value as it is written on the wire.
            #[allow(dead_code)]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        #[cfg(test)]
        impl super::shape::Describe for $name {
            fn ty() -> super::shape::Ty {
                super::shape::Ty::Named(stringify!($name))
            }
            fn register(reg: &mut super::shape::Registry) {
                let values = vec![$($wire),+];
                let samples = Self::ALL.iter().map(super::shape::to_json).collect();
                reg.types.insert(
                    stringify!($name),
                    super::shape::TypeInfo { def: super::shape::Def::Enum(values), samples },
                );
            }
        }

        #[cfg(test)]
        impl super::shape::Sample for $name {
            fn full() -> Self {
                Self::ALL[0]
            }
            fn sparse() -> Self {
                Self::ALL[0]
            }
        }
    )*};
}

/// Declares a union of objects told apart by a string tag field:
/// `pub enum Name by "type" { Variant = "wire" { fields }, ... }`.
macro_rules! wire_union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident by $tag:literal {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal {
                $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
            }),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = $tag)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $wire, rename_all = "camelCase")]
                $variant { $($(#[$fmeta])* $field: $ty,)* },
            )*
        }

        #[cfg(test)]
        impl super::shape::Describe for $name {
            fn ty() -> super::shape::Ty {
                super::shape::Ty::Named(stringify!($name))
            }
            fn register(reg: &mut super::shape::Registry) {
                if reg.types.contains_key(stringify!($name)) {
                    return;
                }
                let variants = vec![$(($wire, vec![$(super::shape::FieldDef {
                    name: stringify!($field),
                    ty: <$ty as super::shape::Describe>::ty(),
                }),*])),*];
                let samples = vec![$(
                    super::shape::to_json(&$name::$variant { $($field: super::shape::Sample::full(),)* }),
                    super::shape::to_json(&$name::$variant { $($field: super::shape::Sample::sparse(),)* }),
                )*];
                reg.types.insert(
                    stringify!($name),
                    super::shape::TypeInfo {
                        def: super::shape::Def::Union { tag: $tag, variants },
                        samples,
                    },
                );
                $($(<$ty as super::shape::Describe>::register(reg);)*)*
            }
        }

        #[cfg(test)]
        impl super::shape::Sample for $name {
            fn full() -> Self {
                let mut all = vec![$($name::$variant { $($field: super::shape::Sample::full(),)* }),*];
                all.remove(0)
            }
            fn sparse() -> Self {
                Self::full()
            }
        }
    };
}

#[cfg(test)]
pub use described::*;

#[cfg(test)]
#[allow(dead_code)]
mod described {
    use serde::Serialize;
    use serde_json::Value;
    use std::collections::{BTreeMap, HashMap};

    /// A field's type as declared in Rust.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Ty {
        Str,
        Int,
        Float,
        Bool,
        /// Any JSON value.
        Any,
        Array(Box<Ty>),
        /// A JSON object with free (string) keys.
        Map(Box<Ty>),
        /// `Option<T>`: null, or absent when serde skips `None`.
        Option(Box<Ty>),
        /// Another wire type.
        Named(&'static str),
    }

    #[derive(Debug, Clone)]
    pub struct FieldDef {
        /// The Rust field name (serde writes it in camelCase).
        pub name: &'static str,
        pub ty: Ty,
    }

    #[derive(Debug, Clone)]
    pub enum Def {
        Struct(Vec<FieldDef>),
        /// String values.
        Enum(Vec<&'static str>),
        /// Objects told apart by `tag`: (tag value, fields).
        Union {
            tag: &'static str,
            variants: Vec<(&'static str, Vec<FieldDef>)>,
        },
    }

    #[derive(Debug, Clone)]
    pub struct TypeInfo {
        pub def: Def,
        /// Serialized samples: for structs every field filled, then every field at
        /// its emptiest; for enums every value; for unions both, per variant.
        pub samples: Vec<Value>,
    }

    /// Every wire type reachable from the ones registered, by name.
    #[derive(Debug, Default)]
    pub struct Registry {
        pub types: BTreeMap<&'static str, TypeInfo>,
    }

    pub fn to_json<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap_or(Value::Null)
    }

    /// How a Rust type is described on the wire.
    pub trait Describe {
        fn ty() -> Ty;
        fn register(_reg: &mut Registry) {}
    }

    /// Sample values: `full` fills everything, `sparse` leaves everything empty.
    pub trait Sample: Sized {
        fn full() -> Self;
        fn sparse() -> Self;
    }

    macro_rules! primitive {
        ($($t:ty => $ty:expr, $full:expr, $sparse:expr;)*) => {$(
            impl Describe for $t {
                fn ty() -> Ty {
                    $ty
                }
            }
            impl Sample for $t {
                fn full() -> Self {
                    $full
                }
                fn sparse() -> Self {
                    $sparse
                }
            }
        )*};
    }

    primitive! {
        String => Ty::Str, "x".to_string(), String::new();
        bool => Ty::Bool, true, false;
        u32 => Ty::Int, 7, 0;
        u64 => Ty::Int, 7, 0;
        i64 => Ty::Int, 7, 0;
        f64 => Ty::Float, 0.5, 0.0;
        Value => Ty::Any, serde_json::json!({ "any": [1, "x"] }), Value::Null;
    }

    impl<T: Describe + Sample> Describe for Option<T> {
        fn ty() -> Ty {
            Ty::Option(Box::new(T::ty()))
        }
        fn register(reg: &mut Registry) {
            T::register(reg)
        }
    }
    impl<T: Sample> Sample for Option<T> {
        fn full() -> Self {
            Some(T::full())
        }
        fn sparse() -> Self {
            None
        }
    }

    impl<T: Describe> Describe for Vec<T> {
        fn ty() -> Ty {
            Ty::Array(Box::new(T::ty()))
        }
        fn register(reg: &mut Registry) {
            T::register(reg)
        }
    }
    impl<T: Sample> Sample for Vec<T> {
        fn full() -> Self {
            vec![T::full()]
        }
        fn sparse() -> Self {
            Vec::new()
        }
    }

    impl<T: Describe> Describe for BTreeMap<String, T> {
        fn ty() -> Ty {
            Ty::Map(Box::new(T::ty()))
        }
        fn register(reg: &mut Registry) {
            T::register(reg)
        }
    }
    impl<T: Sample> Sample for BTreeMap<String, T> {
        fn full() -> Self {
            BTreeMap::from([("key".to_string(), T::full())])
        }
        fn sparse() -> Self {
            BTreeMap::new()
        }
    }

    impl<T: Describe> Describe for HashMap<String, T> {
        fn ty() -> Ty {
            Ty::Map(Box::new(T::ty()))
        }
        fn register(reg: &mut Registry) {
            T::register(reg)
        }
    }
    impl<T: Sample> Sample for HashMap<String, T> {
        fn full() -> Self {
            HashMap::from([("key".to_string(), T::full())])
        }
        fn sparse() -> Self {
            HashMap::new()
        }
    }
}
