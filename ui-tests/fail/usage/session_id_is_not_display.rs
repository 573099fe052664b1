use session::SessionId;

fn main() {
    // An ID is a bearer credential: printing it must be an explicit `expose()`.
    let id = SessionId::generate().unwrap();
    println!("{id}");
}
