//! Cross-field and cross-attribute rules, all in one place.

use std::collections::HashMap;

use crate::{ast::Container, errors::Errors};

/// How many persisted fields the runtime's dirty set can track.
pub const MAX_FIELDS: usize = 64;

/// The stored name whose tag the runtime reserves for the device it records with a session
/// (`session/src/device.rs`, `DEVICE_NAME`): no field may have that tag.
const RESERVED_NAME: &str = "$device";

/// FNV-1a, 32 bits: the stable tag of a stored field name.
pub fn field_tag(stored_name: &str) -> u32 {
    stored_name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The 16-bit fingerprint of a stored field's type, as written, and its `version`: stored
/// with each value, so a value written under another type is noticed, never misread.
pub fn type_fingerprint(ty: &syn::Type, version: u32) -> u16 {
    let mut text = type_text(ty);
    if version != 0 {
        text.push_str(&format!("#v{version}"));
    }
    let hash = field_tag(&text);
    (hash ^ (hash >> 16)) as u16
}

/// A type as written, with each path reduced to its last segment (`std::string::String`
/// and `String` are one type) and no whitespace.
fn type_text(ty: &syn::Type) -> String {
    use quote::ToTokens as _;
    match ty {
        syn::Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(segment) => {
                let mut text = segment.ident.to_string();
                if let syn::PathArguments::AngleBracketed(args) = &segment.arguments {
                    let args: Vec<String> = args
                        .args
                        .iter()
                        .map(|arg| match arg {
                            syn::GenericArgument::Type(ty) => type_text(ty),
                            other => compact(other.to_token_stream()),
                        })
                        .collect();
                    text.push('<');
                    text.push_str(&args.join(","));
                    text.push('>');
                }
                text
            }
            None => compact(ty.to_token_stream()),
        },
        syn::Type::Tuple(tuple) => {
            let elems: Vec<String> = tuple.elems.iter().map(type_text).collect();
            format!("({})", elems.join(","))
        }
        syn::Type::Array(array) => format!("[{};{}]", type_text(&array.elem), compact(array.len.to_token_stream())),
        syn::Type::Slice(slice) => format!("[{}]", type_text(&slice.elem)),
        syn::Type::Reference(reference) => format!("&{}", type_text(&reference.elem)),
        syn::Type::Paren(inner) => type_text(&inner.elem),
        syn::Type::Group(inner) => type_text(&inner.elem),
        other => compact(other.to_token_stream()),
    }
}

fn compact(tokens: proc_macro2::TokenStream) -> String {
    tokens.to_string().chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether a type is written `Expiring<T>` (any path ending so): such a field without
/// `#[session(expiring)]` would get plain accessors that ignore the deadline.
fn is_expiring_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(path) if path.qself.is_none() => path.path.segments.last().is_some_and(|segment| {
            segment.ident == "Expiring"
                && matches!(&segment.arguments, syn::PathArguments::AngleBracketed(args) if args.args.len() == 1)
        }),
        syn::Type::Paren(inner) => is_expiring_type(&inner.elem),
        syn::Type::Group(inner) => is_expiring_type(&inner.elem),
        _ => false,
    }
}

/// The `T` of a type written `Option<T>` (any path ending so): the only type an index can
/// have, since a session with nobody logged in must have none.
pub fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    match ty {
        syn::Type::Path(path) if path.qself.is_none() => {
            let segment = path.path.segments.last().filter(|segment| segment.ident == "Option")?;
            match &segment.arguments {
                syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first() {
                    Some(syn::GenericArgument::Type(inner)) => Some(inner),
                    _ => None,
                },
                _ => None,
            }
        }
        syn::Type::Paren(inner) => option_inner(&inner.elem),
        syn::Type::Group(inner) => option_inner(&inner.elem),
        _ => None,
    }
}

/// The rules of `#[session(index)]`: on an `Option<T>`, alone among the other kinds of
/// field, and on one field only.
fn check_index(container: &Container, errors: &mut Errors) {
    let mut first: Option<&syn::Ident> = None;
    for field in &container.fields {
        let attrs = &field.attrs;
        let Some(index) = &attrs.index else { continue };
        let conflicts = [
            (
                attrs.flash.is_some(),
                "`index` conflicts with `flash`: a flash value lasts one request, an index as long as the login",
            ),
            (
                attrs.expiring.is_some(),
                "`index` conflicts with `expiring`: a session's principal must not vanish on its own",
            ),
            (
                attrs.skip.is_some(),
                "`index` conflicts with `skip`: an index is stored with the session, a `skip` field never is",
            ),
            (
                attrs.default.is_some(),
                "`index` does not take a `default`: a new session belongs to nobody (`None`)",
            ),
        ];
        let mut conflicting = false;
        for (_, message) in conflicts.iter().filter(|(conflict, _)| *conflict) {
            errors.at(index.keyword, message);
            conflicting = true;
        }
        // A flash or expiring field's type is wrong for its other attribute already.
        if !conflicting && option_inner(field.ty).is_none() {
            errors.spanned(
                field.ty,
                "an `index` field must have type `Option<T>`: `None` (nobody logged in) is not indexed",
            );
        }
        match first {
            Some(first) => errors.at(
                index.keyword,
                format!(
                    "field `{first}` is already the index: a session type has at most one, the principal \
                     its sessions belong to (stores keep one index digest per session)"
                ),
            ),
            None => first = Some(field.ident),
        }
    }
}

pub fn check(container: &Container, errors: &mut Errors) {
    check_index(container, errors);
    let mut names: HashMap<String, &syn::Ident> = HashMap::new();
    let mut tags: HashMap<u32, String> = HashMap::new();
    let mut persisted = 0;
    for field in &container.fields {
        let attrs = &field.attrs;
        if let Some(skip) = &attrs.skip {
            if let Some(flash) = &attrs.flash {
                errors.at(
                    flash.keyword,
                    "`flash` conflicts with `skip`: a flash value must be stored to reach the next request",
                );
                let _ = skip;
            }
            if let Some(expiring) = &attrs.expiring {
                errors.at(
                    expiring.keyword,
                    "`expiring` conflicts with `skip`: an expiring value is stored with its deadline, \
                     and a `skip` field is never stored",
                );
            }
            if let Some(rename) = &attrs.rename {
                errors.at(
                    rename.keyword,
                    "`rename` has no effect on a `skip` field, which is never stored",
                );
            }
            if let Some(version) = &attrs.version {
                errors.at(
                    version.keyword,
                    "`version` has no effect on a `skip` field, which is never stored",
                );
            }
            continue;
        }
        if let (Some(default), Some(_)) = (&attrs.default, &attrs.flash) {
            errors.at(
                default.keyword,
                "`default` does not apply to a flash field: a flash slot starts empty",
            );
        }
        if let (Some(expiring), Some(_)) = (&attrs.expiring, &attrs.flash) {
            errors.at(
                expiring.keyword,
                "`expiring` conflicts with `flash`: a field is either a flash slot (`Flash<T>`) \
                 or an expiring slot (`Expiring<T>`)",
            );
        }
        if let (Some(default), Some(_)) = (&attrs.default, &attrs.expiring) {
            errors.at(
                default.keyword,
                "`default` does not apply to an expiring field: an expiring slot starts empty",
            );
        }
        if attrs.expiring.is_none() && attrs.flash.is_none() && is_expiring_type(field.ty) {
            errors.spanned(
                field.ty,
                format!(
                    "a field of type `Expiring<T>` needs `#[session(expiring)]`, which generates its \
                     accessors (`set_{name}(value, ttl)`, `{name}()`, ...)",
                    name = crate::ast::unraw(field.ident)
                ),
            );
        }
        persisted += 1;
        let name = field.stored_name();
        let at = attrs
            .rename
            .as_ref()
            .map_or(field.ident.span(), |rename| rename.value.span());
        if let Some(first) = names.get(&name) {
            errors.at(
                at,
                format!("stored name `{name}` is already used by field `{first}`; give one of them another `rename`"),
            );
            continue;
        }
        let tag = field_tag(&name);
        if tag == field_tag(RESERVED_NAME) {
            errors.at(
                at,
                format!(
                    "stored name `{name}` has the field tag the runtime reserves for the device it \
                     records with a session; `rename` the field"
                ),
            );
        }
        if let Some(other) = tags.get(&tag) {
            errors.at(
                at,
                format!("stored names `{name}` and `{other}` have the same field tag; `rename` one of them"),
            );
        }
        names.insert(name.clone(), field.ident);
        tags.insert(tag, name);
    }
    if persisted > MAX_FIELDS {
        errors.spanned(
            container.ident,
            format!(
                "`{}` has {persisted} persisted fields, but a session tracks at most {MAX_FIELDS}; \
                 mark transient fields `#[session(skip)]` or group related fields into a struct",
                container.ident
            ),
        );
    }
}
