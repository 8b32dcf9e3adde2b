fn main() {
    eprintln!("shmifdump: not implemented yet");
    std::process::exit(1);
}
