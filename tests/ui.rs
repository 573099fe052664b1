//! Compile-time checks of `#[derive(SessionData)]`: every misuse is a clear compile error
//! (with a reviewed snapshot in `ui-tests/fail/**/*.stderr`), every valid use compiles.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui-tests/fail/*/*.rs");
    cases.pass("ui-tests/pass/*.rs");
}
