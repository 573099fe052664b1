//! Code generation: thin glue that calls the runtime's generic helpers.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{DeriveInput, Ident, Path, spanned::Spanned};

use crate::{
    ast::{Container, Field, Kind, unraw},
    check::{check, field_tag, option_inner, type_fingerprint},
    errors::Errors,
};

pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = Container::from_ast(input, &mut errors);
    if let Some(container) = &container {
        check(container, &mut errors);
    }
    match (container, errors.finish()) {
        (Some(container), Ok(())) => expand(&container),
        (None, Ok(())) => unreachable!("a shape error is always reported"),
        (container, Err(error)) => {
            let krate = container
                .as_ref()
                .and_then(|c| c.attrs.krate.as_ref())
                .map_or_else(default_crate, |k| k.value.clone());
            let fallback = fallback(input, &krate);
            let error = error.into_compile_error();
            quote! { #error #fallback }
        }
    }
}

fn default_crate() -> Path {
    syn::parse_quote!(::session)
}

fn fields_ident(ident: &Ident) -> Ident {
    format_ident!("{}Fields", ident)
}

/// The accessor type and its plumbing, shared by the real expansion and the fallback.
fn fields_type(input_ident: &Ident, vis: &syn::Visibility, generics: &syn::Generics, krate: &Path) -> TokenStream {
    let fields_ident = fields_ident(input_ident);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let doc = format!(
        "Typed accessors of [`{input_ident}`] that track which fields change.\n\n\
         `Session<{input_ident}>` dereferences to this type, so its methods are called on the session."
    );
    quote! {
        #[doc = #doc]
        #[repr(transparent)]
        #vis struct #fields_ident #generics (#krate::__private::Tracked<#input_ident #ty_generics>) #where_clause;

        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::__private::FieldsOf<#input_ident #ty_generics>
                for #fields_ident #ty_generics #where_clause
            {
                fn wrap(tracked: #krate::__private::Tracked<#input_ident #ty_generics>) -> Self {
                    Self(tracked)
                }
                fn tracked(&self) -> &#krate::__private::Tracked<#input_ident #ty_generics> {
                    &self.0
                }
                fn tracked_mut(&mut self) -> &mut #krate::__private::Tracked<#input_ident #ty_generics> {
                    &mut self.0
                }
                fn into_tracked(self) -> #krate::__private::Tracked<#input_ident #ty_generics> {
                    self.0
                }
            }
        };
    }
}

/// Emitted beside the errors so that uses of the type do not add "trait not implemented" noise.
fn fallback(input: &DeriveInput, krate: &Path) -> TokenStream {
    let ident = &input.ident;
    let fields_ident = fields_ident(ident);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let fields_type = fields_type(ident, &input.vis, &input.generics, krate);
    quote! {
        #fields_type
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::SessionData for #ident #ty_generics #where_clause {
                type Fields = #fields_ident #ty_generics;
                const FIELDS: &'static [#krate::__private::FieldDef] = &[];
                fn initial() -> Self {
                    ::core::unreachable!()
                }
                fn encode_field(
                    &self,
                    _: usize,
                    _: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), #krate::FieldError> {
                    ::core::unreachable!()
                }
                fn decode_field(&mut self, _: usize, _: &[u8]) -> ::core::result::Result<(), #krate::FieldError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}

struct Persisted<'a> {
    index: usize,
    field: &'a Field<'a>,
    flash: bool,
    expiring: bool,
}

fn expand(container: &Container) -> TokenStream {
    let krate = container
        .attrs
        .krate
        .as_ref()
        .map_or_else(default_crate, |k| k.value.clone());
    let ident = container.ident;
    let fields_ident = fields_ident(ident);
    let (impl_generics, ty_generics, where_clause) = container.generics.split_for_impl();
    let private = quote!(#krate::__private);

    let persisted: Vec<Persisted> = container
        .fields
        .iter()
        .filter(|field| field.kind() != Kind::Skip)
        .enumerate()
        .map(|(index, field)| Persisted {
            index,
            field,
            flash: field.kind() == Kind::Flash,
            expiring: field.kind() == Kind::Expiring,
        })
        .collect();

    let field_defs = persisted.iter().map(|p| {
        let name = p.field.stored_name();
        let tag = field_tag(&name);
        let flash = p.flash;
        let version = p
            .field
            .attrs
            .version
            .as_ref()
            .and_then(|version| version.value.base10_parse::<u32>().ok())
            .unwrap_or(0);
        let fingerprint = type_fingerprint(p.field.ty, version);
        quote!(#krate::__private::FieldDef::new(#name, #tag, #flash, #fingerprint))
    });

    let initial = container.fields.iter().map(|field| {
        let member = field.ident;
        let value = match &field.attrs.default {
            Some(default) => {
                let expr = &default.value;
                quote_spanned!(expr.span()=> #expr)
            }
            None => quote_spanned!(field.ty.span()=> ::core::default::Default::default()),
        };
        quote!(#member: #value)
    });

    // One bound-checked codec per field, spanned at its type: a type that is not storable
    // is reported once, on the field, not once per use.
    let codec_fns = persisted.iter().map(|p| {
        let (name, ty) = (codec_fn(p.index), p.field.ty);
        let helper = if p.flash {
            quote!(flash_codec)
        } else if p.expiring {
            quote!(expiring_codec)
        } else {
            quote!(value_codec)
        };
        let path = respan(private.clone(), ty.span());
        let call = quote_spanned!(ty.span()=> #path::#helper::<#ty>());
        quote! {
            #[doc(hidden)]
            #[inline]
            fn #name() -> #private::FieldCodec<#ty> {
                #call
            }
        }
    });
    let encode_arms = persisted.iter().map(|p| {
        let (index, member, name) = (p.index, p.field.ident, codec_fn(p.index));
        quote!(#index => (Self::#name().encode)(&self.#member, out),)
    });
    let decode_arms = persisted.iter().map(|p| {
        let (index, member, name) = (p.index, p.field.ident, codec_fn(p.index));
        quote!(#index => (Self::#name().decode)(&mut self.#member, bytes),)
    });
    let flash_dirty = persisted.iter().filter(|p| p.flash).map(|p| {
        let (index, member, ty) = (p.index, p.field.ident, p.field.ty);
        quote_spanned!(ty.span()=> if <#ty as #private::FlashSlot>::needs_write(&self.#member) { dirty.insert(#index); })
    });
    let flash_saved = persisted.iter().filter(|p| p.flash).map(|p| {
        let (member, ty) = (p.field.ident, p.field.ty);
        quote_spanned!(ty.span()=> <#ty as #private::FlashSlot>::mark_saved(&mut self.#member);)
    });
    let flash_fns = persisted.iter().any(|p| p.flash).then(|| {
        quote! {
            fn flash_dirty(&self) -> #krate::__private::DirtySet {
                let mut dirty = #krate::__private::DirtySet::EMPTY;
                #(#flash_dirty)*
                dirty
            }

            fn flash_saved(&mut self) {
                #(#flash_saved)*
            }
        }
    });

    let drop_expired = persisted.iter().filter(|p| p.expiring).map(|p| {
        let (member, ty) = (p.field.ident, p.field.ty);
        quote_spanned!(ty.span()=> <#ty as #private::ExpiringSlot>::drop_expired(&mut self.#member, now_ms);)
    });
    let expiring_fns = persisted.iter().any(|p| p.expiring).then(|| {
        quote! {
            fn drop_expired(&mut self, now_ms: u64) {
                #(#drop_expired)*
            }
        }
    });

    // The digest through the runtime's helper, naming the `T` of `Option<T>` as written: a
    // `T` that cannot be serialized is reported on it.
    let index_fn = persisted.iter().find(|p| p.field.attrs.index.is_some()).map(|p| {
        let (member, name) = (p.field.ident, p.field.stored_name());
        let inner = option_inner(p.field.ty).expect("checked: an index field is an Option");
        let path = respan(private.clone(), inner.span());
        let call = quote_spanned!(inner.span()=> #path::index_key::<#inner>(#name, &self.#member));
        quote! {
            fn index_key(&self) -> ::core::option::Option<#krate::store::IndexKey> {
                #call
            }
        }
    });

    let vis = container.vis;
    let indices = persisted.iter().map(|p| (p.field.ident, p.index)).collect::<Vec<_>>();
    let accessors = container.fields.iter().map(|field| {
        let index = indices
            .iter()
            .find(|(ident, _)| *ident == field.ident)
            .map(|(_, index)| *index);
        accessors(field, index, vis, &private)
    });

    let fields_type = fields_type(ident, vis, container.generics, &krate);
    quote! {
        #fields_type

        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::SessionData for #ident #ty_generics #where_clause {
                type Fields = #fields_ident #ty_generics;

                const FIELDS: &'static [#krate::__private::FieldDef] = &[#(#field_defs),*];

                fn initial() -> Self {
                    Self { #(#initial),* }
                }

                fn encode_field(
                    &self,
                    index: usize,
                    out: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), #krate::FieldError> {
                    match index {
                        #(#encode_arms)*
                        _ => #private::no_such_field(index),
                    }
                }

                fn decode_field(
                    &mut self,
                    index: usize,
                    bytes: &[u8],
                ) -> ::core::result::Result<(), #krate::FieldError> {
                    match index {
                        #(#decode_arms)*
                        _ => #private::no_such_field(index),
                    }
                }

                #flash_fns
                #expiring_fns
                #index_fn
            }

            #[automatically_derived]
            impl #impl_generics #ident #ty_generics #where_clause {
                #(#codec_fns)*
            }

            #[automatically_derived]
            impl #impl_generics #fields_ident #ty_generics #where_clause {
                #(#accessors)*
            }
        };
    }
}

/// Gives every token the span of the field type, so an unmet bound is reported on the field.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

fn codec_fn(index: usize) -> Ident {
    format_ident!("__session_field_codec_{}", index)
}

fn accessors(field: &Field, index: Option<usize>, vis: &syn::Visibility, private: &TokenStream) -> TokenStream {
    let member = field.ident;
    let ty = field.ty;
    let name = unraw(member);
    let set = format_ident!("set_{}", name, span = member.span());
    let get_mut = format_ident!("{}_mut", name, span = member.span());
    match (field.kind(), index) {
        (Kind::Flash, Some(_)) => {
            let keep = format_ident!("keep_{}", name, span = member.span());
            let now = format_ident!("{}_now", name, span = member.span());
            let value = quote_spanned!(ty.span()=> <#ty as #private::FlashSlot>::Value);
            let slot = quote!(<#ty as #private::FlashSlot>);
            let span = ty.span();
            let get_body = quote_spanned!(span=> #slot::current(&self.0.data().#member));
            let set_body = quote_spanned!(span=> #slot::set_next(&mut self.0.data_mut().#member, value));
            let keep_body = quote_spanned!(span=> #slot::keep(&mut self.0.data_mut().#member));
            let now_body = quote_spanned!(span=> #slot::set_now(&mut self.0.data_mut().#member, value));
            let docs = [
                format!("The flash value `{name}` visible in this request: set during the previous request, or now."),
                format!("Sets the flash value `{name}` for the next request."),
                format!("Keeps this request's flash value `{name}` for the next request too."),
                format!("Sets the flash value `{name}` for this request only; it is never stored."),
            ];
            let [get_doc, set_doc, keep_doc, now_doc] = docs;
            quote_spanned! {span=>
                #[doc = #get_doc]
                #[inline]
                #vis fn #member(&self) -> ::core::option::Option<&#value> {
                    #get_body
                }
                #[doc = #set_doc]
                #[inline]
                #vis fn #set(&mut self, value: #value) {
                    #set_body
                }
                #[doc = #keep_doc]
                #[inline]
                #vis fn #keep(&mut self) {
                    #keep_body
                }
                #[doc = #now_doc]
                #[inline]
                #vis fn #now(&mut self, value: #value) {
                    #now_body
                }
            }
        }
        (Kind::Expiring, Some(index)) => expiring_accessors(field, index, vis, private),
        (_, index) => {
            let (target, note) = match index {
                Some(index) => (
                    quote!(self.0.mark(#index)),
                    " and marks it changed, so the next save writes it",
                ),
                None => (quote!(self.0.data_mut()), "; it is not stored (`#[session(skip)]`)"),
            };
            let get_doc = format!("Returns `{name}`.");
            let set_doc = format!("Sets `{name}`{note}.");
            let mut_doc = format!("Returns `{name}` mutably{note}.");
            quote! {
                #[doc = #get_doc]
                #[inline]
                #vis fn #member(&self) -> &#ty {
                    &self.0.data().#member
                }
                #[doc = #set_doc]
                #[inline]
                #vis fn #set(&mut self, value: #ty) {
                    #target.#member = value;
                }
                #[doc = #mut_doc]
                #[inline]
                #vis fn #get_mut(&mut self) -> &mut #ty {
                    &mut #target.#member
                }
            }
        }
    }
}

/// `code()`, `set_code(value, ttl)`, `take_code()`, `clear_code()` and `code_expires_in()`
/// for an expiring field `code`: each reads the time from the tracked data's clock.
fn expiring_accessors(field: &Field, index: usize, vis: &syn::Visibility, private: &TokenStream) -> TokenStream {
    let member = field.ident;
    let ty = field.ty;
    let name = unraw(member);
    let set = format_ident!("set_{}", name, span = member.span());
    let take = format_ident!("take_{}", name, span = member.span());
    let clear = format_ident!("clear_{}", name, span = member.span());
    let expires_in = format_ident!("{}_expires_in", name, span = member.span());
    let span = ty.span();
    let value = quote_spanned!(span=> <#ty as #private::ExpiringSlot>::Value);
    let slot = quote!(<#ty as #private::ExpiringSlot>);
    let duration = quote!(::core::time::Duration);
    let get_body = quote_spanned!(span=> #slot::get_at(&self.0.data().#member, self.0.now_ms()));
    let expires_in_body = quote_spanned!(span=> #slot::expires_in_at(&self.0.data().#member, self.0.now_ms()));
    let set_body = quote_spanned!(span=> #slot::set_for(&mut self.0.mark(#index).#member, value, ttl, now_ms));
    let take_body = quote_spanned!(span=> #slot::take_at(&mut self.0.mark(#index).#member, now_ms));
    let clear_body = quote_spanned!(span=> #slot::clear(&mut self.0.mark(#index).#member));
    let docs = [
        format!("The expiring value `{name}`, or `None` when unset or past its deadline."),
        format!(
            "Sets the expiring value `{name}` for `ttl` from now (the session's clock) and marks it \
             changed; the session's own lifetime does not move."
        ),
        format!("Removes the expiring value `{name}` and returns it if it had not expired; marks it changed."),
        format!("Removes the expiring value `{name}` and marks it changed."),
        format!("How long the expiring value `{name}` has left, or `None` when unset or past its deadline."),
    ];
    let [get_doc, set_doc, take_doc, clear_doc, expires_in_doc] = docs;
    quote_spanned! {span=>
        #[doc = #get_doc]
        #[inline]
        #vis fn #member(&self) -> ::core::option::Option<&#value> {
            #get_body
        }
        #[doc = #set_doc]
        #[inline]
        #vis fn #set(&mut self, value: #value, ttl: #duration) {
            let now_ms = self.0.now_ms();
            #set_body
        }
        #[doc = #take_doc]
        #[inline]
        #vis fn #take(&mut self) -> ::core::option::Option<#value> {
            let now_ms = self.0.now_ms();
            #take_body
        }
        #[doc = #clear_doc]
        #[inline]
        #vis fn #clear(&mut self) {
            #clear_body
        }
        #[doc = #expires_in_doc]
        #[inline]
        #vis fn #expires_in(&self) -> ::core::option::Option<#duration> {
            #expires_in_body
        }
    }
}
