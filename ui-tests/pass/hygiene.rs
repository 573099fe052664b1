// The generated code must compile whatever the user has in scope.
#![no_implicit_prelude]

#[derive(::session::SessionData)]
struct AppSession {
    r#type: ::std::string::String,
    #[session(flash)]
    notice: ::session::Flash<::std::string::String>,
}

#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Vec;

fn main() {
    let _ = <AppSession as ::session::SessionData>::FIELDS;
}
