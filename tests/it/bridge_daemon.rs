//! brconfig's requests and the bridge's answers across a real ifnetd
//! control socket (the library entry point over `client::Client`).

use crate::common;

use common::Daemon;
use ifnet::client::Client;
use ifnet::ioctl::{Ioctl, Request};

fn brconfig(c: &mut Client, line: &str) -> (i32, String, String) {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = ifnet::brconfig::main_with(&args, c, &mut out, &mut err);
    (
        rc,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn configure_and_show_over_the_socket() {
    let d = Daemon::start();
    let mut c = Client::connect(&d.sock).unwrap();
    c.ioctl(Request::IfCreate {
        name: "bridge0".into(),
    })
    .unwrap();
    let (rc, out, err) = brconfig(
        &mut c,
        "bridge0 maxaddr 0x20 timeout 60 priority 100 hellotime 3 fwddelay 5 maxage 7 ipf up",
    );
    assert_eq!((rc, out.as_str(), err.as_str()), (0, "", ""));
    let (rc, out, _) = brconfig(&mut c, "-a");
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "bridge0: flags=41<UP,RUNNING>
\tConfiguration:
\t\tpriority 100 hellotime 3 fwddelay 5 maxage 7
\t\tipfilter enabled flags 0x1
\tInterfaces:
\tAddress cache (max cache: 32, timeout: 60):
"
    );
    let (rc, _, err) = brconfig(&mut c, "bridge0 add lo0");
    assert_eq!(
        (rc, err.as_str()),
        (1, "brconfig: add lo0: Invalid argument\n")
    );
    let (rc, _, err) = brconfig(&mut c, "bridge0 deladdr 00:aa:aa:aa:aa:aa");
    assert_eq!(
        (rc, err.as_str()),
        (
            1,
            "brconfig: deladdr 00:aa:aa:aa:aa:aa: No such file or directory\n"
        )
    );
    let (rc, _, err) = brconfig(&mut c, "bridge1");
    assert_eq!(
        (rc, err.as_str()),
        (
            1,
            "brconfig: unable to get interface flags: Device not configured\n"
        )
    );
}
