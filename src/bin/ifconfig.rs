fn main() {
    eprintln!("ifconfig: not implemented yet");
    std::process::exit(1);
}
