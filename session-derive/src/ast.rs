//! The derive input, parsed once into a small AST that borrows from `syn`.

use syn::{Data, DeriveInput, Fields, Generics, Ident, Type, Visibility};

use crate::{
    attr::{ContainerAttrs, FieldAttrs},
    errors::Errors,
};

pub struct Container<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub generics: &'a Generics,
    pub attrs: ContainerAttrs,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub attrs: FieldAttrs,
}

/// What a field is, once its attributes are known to be consistent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Flash,
    Expiring,
    Skip,
}

impl Field<'_> {
    pub fn kind(&self) -> Kind {
        if self.attrs.skip.is_some() {
            Kind::Skip
        } else if self.attrs.flash.is_some() {
            Kind::Flash
        } else if self.attrs.expiring.is_some() {
            Kind::Expiring
        } else {
            Kind::Plain
        }
    }

    /// The name the field is stored under.
    pub fn stored_name(&self) -> String {
        self.attrs
            .rename
            .as_ref()
            .map_or_else(|| unraw(self.ident), |rename| rename.value.value())
    }
}

pub fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

impl<'a> Container<'a> {
    /// Parses the input; `None` when its shape cannot be a session at all.
    pub fn from_ast(input: &'a DeriveInput, errors: &mut Errors) -> Option<Self> {
        let attrs = ContainerAttrs::parse(&input.attrs, errors);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(_) => {
                    errors.spanned(
                        &input.ident,
                        "SessionData needs named fields: every field is stored under its name; \
                         use `struct Name { field: Type }`",
                    );
                    return None;
                }
                Fields::Unit => {
                    errors.spanned(
                        &input.ident,
                        "SessionData needs a struct with named fields, not a unit struct",
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                errors.spanned(
                    data.enum_token,
                    "SessionData cannot be derived for an enum; wrap it in a struct field \
                     instead: `struct MySession { state: MyEnum }`",
                );
                return None;
            }
            Data::Union(data) => {
                errors.spanned(
                    data.union_token,
                    "SessionData cannot be derived for a union; use a struct with named fields",
                );
                return None;
            }
        };
        let fields = fields
            .iter()
            .map(|field| Field {
                ident: field.ident.as_ref().expect("named field"),
                ty: &field.ty,
                attrs: FieldAttrs::parse(&field.attrs, errors),
            })
            .collect();
        Some(Container {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            attrs,
            fields,
        })
    }
}
