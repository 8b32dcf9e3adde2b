fn main() {
    eprintln!("ifnetd: not implemented yet");
    std::process::exit(1);
}
