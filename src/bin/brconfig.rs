fn main() {
    eprintln!("brconfig: not implemented yet");
    std::process::exit(1);
}
