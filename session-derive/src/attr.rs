//! `#[session(...)]` attributes, parsed into typed values that keep their spans.

use proc_macro2::Span;
use syn::{Attribute, Expr, LitInt, LitStr, Path, meta::ParseNestedMeta, spanned::Spanned as _};

use crate::errors::Errors;

/// A parsed attribute value with the span of its keyword, so that
/// "specified more than once" and conflicts point at the right token.
pub struct Keyed<T> {
    pub keyword: Span,
    pub value: T,
}

/// Attributes on a field.
#[derive(Default)]
pub struct FieldAttrs {
    pub flash: Option<Keyed<()>>,
    pub expiring: Option<Keyed<()>>,
    pub index: Option<Keyed<()>>,
    pub skip: Option<Keyed<()>>,
    pub default: Option<Keyed<Expr>>,
    pub rename: Option<Keyed<LitStr>>,
    pub version: Option<Keyed<LitInt>>,
}

/// Attributes on the struct.
#[derive(Default)]
pub struct ContainerAttrs {
    pub krate: Option<Keyed<Path>>,
}

const FIELD_KEYWORDS: &str =
    "`flash`, `expiring`, `index`, `default = EXPR`, `skip`, `rename = \"name\"`, `version = N`";
const CONTAINER_KEYWORDS: &str = "`crate = \"path\"`";

fn set<T>(slot: &mut Option<Keyed<T>>, meta: &ParseNestedMeta, value: T, errors: &mut Errors) {
    let keyword = meta.path.span();
    if slot.is_some() {
        let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        errors.at(keyword, format!("`{name}` is specified more than once"));
    } else {
        *slot = Some(Keyed { keyword, value });
    }
}

fn session_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("session"))
}

impl FieldAttrs {
    pub fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = Self::default();
        for attr in session_attrs(attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("flash") {
                    set(&mut out.flash, &meta, (), errors);
                } else if meta.path.is_ident("expiring") {
                    set(&mut out.expiring, &meta, (), errors);
                } else if meta.path.is_ident("index") {
                    set(&mut out.index, &meta, (), errors);
                } else if meta.path.is_ident("skip") {
                    set(&mut out.skip, &meta, (), errors);
                } else if meta.path.is_ident("default") {
                    let expr: Expr = meta.value()?.parse()?;
                    set(&mut out.default, &meta, expr, errors);
                } else if meta.path.is_ident("rename") {
                    let name: LitStr = meta.value()?.parse()?;
                    if name.value().is_empty() {
                        errors.spanned(&name, "`rename` needs a non-empty stored name");
                    }
                    set(&mut out.rename, &meta, name, errors);
                } else if meta.path.is_ident("version") {
                    let version: LitInt = meta.value()?.parse()?;
                    if version.base10_parse::<u32>().is_err() {
                        errors.spanned(&version, "`version` must be a whole number such as `version = 2`");
                    }
                    set(&mut out.version, &meta, version, errors);
                } else {
                    let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                    return Err(meta.error(format!(
                        "unknown session field attribute `{name}`; expected one of {FIELD_KEYWORDS}"
                    )));
                }
                Ok(())
            });
            if let Err(error) = result {
                errors.push(error);
            }
        }
        out
    }
}

impl ContainerAttrs {
    pub fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = Self::default();
        for attr in session_attrs(attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    let path: LitStr = meta.value()?.parse()?;
                    let path: Path = path.parse().map_err(|_| {
                        syn::Error::new(
                            path.span(),
                            "`crate` must be a path to the session crate, e.g. `crate = \"my_app::session\"`",
                        )
                    })?;
                    set(&mut out.krate, &meta, path, errors);
                } else {
                    let name = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                    return Err(meta.error(format!(
                        "unknown session container attribute `{name}`; expected {CONTAINER_KEYWORDS}"
                    )));
                }
                Ok(())
            });
            if let Err(error) = result {
                errors.push(error);
            }
        }
        out
    }
}
