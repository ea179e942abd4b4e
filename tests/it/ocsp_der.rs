//! Strict DER on the OCSP path (issue 19): BER variants of real requests made by
//! `openssl ocsp -reqout` are answered `malformedRequest`, and a signed response never carries
//! bytes of the request that are not DER.

use crate::common::*;

const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];

/// One TLV of a DER tree: a leaf keeps its content, a constructed node its children.
#[derive(Clone)]
struct Node {
    tag: u8,
    content: Vec<u8>,
    children: Vec<Node>,
}

/// Splits DER into a tree (single-byte tags, as every OCSP request uses).
fn parse(mut der: &[u8]) -> Vec<Node> {
    let mut nodes = Vec::new();
    while !der.is_empty() {
        let tag = der[0];
        let (len, header) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                (der[2..2 + k].iter().fold(0, |a, b| (a << 8) | *b as usize), 2 + k)
            }
        };
        let content = der[header..header + len].to_vec();
        let children = if tag & 0x20 != 0 { parse(&content) } else { Vec::new() };
        nodes.push(Node { tag, content, children });
        der = &der[header + len..];
    }
    nodes
}

/// How one chosen node is written.
#[derive(Clone, Copy)]
enum Form {
    Der,
    /// Long-form length with one extra leading zero octet (`81 05` → `82 00 05`).
    NonMinimalLength,
    /// Indefinite length with end-of-contents (constructed only).
    Indefinite,
}

fn length(len: usize, form: Form) -> Vec<u8> {
    let minimal: Vec<u8> = if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        [vec![0x80 | bytes.len() as u8], bytes].concat()
    };
    match form {
        Form::NonMinimalLength if len < 0x80 => vec![0x81, len as u8],
        Form::NonMinimalLength => [vec![minimal[0] + 1, 0], minimal[1..].to_vec()].concat(),
        _ => minimal,
    }
}

/// Writes the tree, node number `target` (pre-order) in `form`.
fn write(nodes: &[Node], target: usize, form: Form, counter: &mut usize) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes {
        let this = *counter;
        *counter += 1;
        let content = if n.tag & 0x20 != 0 { write(&n.children, target, form, counter) } else { n.content.clone() };
        let form = if this == target { form } else { Form::Der };
        out.push(n.tag);
        match form {
            Form::Indefinite => {
                out.push(0x80);
                out.extend_from_slice(&content);
                out.extend_from_slice(&[0, 0]);
            }
            _ => {
                out.extend(length(content.len(), form));
                out.extend_from_slice(&content);
            }
        }
    }
    out
}

fn count(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.children)).sum()
}

fn is_constructed(nodes: &[Node], target: usize) -> bool {
    fn walk(nodes: &[Node], target: usize, i: &mut usize) -> Option<bool> {
        for n in nodes {
            if *i == target {
                return Some(n.tag & 0x20 != 0);
            }
            *i += 1;
            if let Some(c) = walk(&n.children, target, i) {
                return Some(c);
            }
        }
        None
    }
    walk(nodes, target, &mut 0).unwrap_or(false)
}

/// Every BER variant of `der`: each TLV with a non-minimal length, each constructed TLV with an
/// indefinite length, the serial INTEGER with a redundant leading zero, trailing bytes.
fn ber_variants(der: &[u8]) -> Vec<(String, Vec<u8>)> {
    let tree = parse(der);
    assert_eq!(write(&tree, usize::MAX, Form::Der, &mut 0), der, "the test's DER writer round-trips");
    let mut variants = Vec::new();
    for target in 0..count(&tree) {
        variants.push((format!("long length at TLV {target}"), write(&tree, target, Form::NonMinimalLength, &mut 0)));
        if is_constructed(&tree, target) {
            variants
                .push((format!("indefinite length at TLV {target}"), write(&tree, target, Form::Indefinite, &mut 0)));
        }
    }
    variants.push(("trailing byte".into(), [der, &[0]].concat()));
    variants
}

/// The serial INTEGER (`02 len value`, the first INTEGER in a request) padded with a zero:
/// lengths of every enclosing TLV are rewritten through the tree.
fn padded_serial(der: &[u8]) -> Vec<u8> {
    fn pad(nodes: &mut [Node]) -> bool {
        for n in nodes {
            if n.tag == 0x02 {
                n.content.insert(0, 0);
                return true;
            }
            if pad(&mut n.children) {
                return true;
            }
        }
        false
    }
    let mut tree = parse(der);
    assert!(pad(&mut tree));
    write(&tree, usize::MAX, Form::Der, &mut 0)
}

#[tokio::test(flavor = "multi_thread")]
async fn ber_variants_of_real_requests_are_malformed_and_never_signed() {
    let ca = TestCa::new().await;
    let daemon = Daemon::start(&ca).await;
    let (cert, _) = issue_cli(&ca, "ee", "org", ORG_SUBJECT);
    let issuer = ca.ca_pem("org");
    let url = format!("{}/ocsp/org", daemon.public);
    let mut requests = Vec::new();
    for (name, extra) in [("plain", "-no_nonce"), ("nonce", "-nonce")] {
        let out = ca.path(&format!("{name}.req"));
        let args = ["ocsp", "-issuer", issuer.to_str().unwrap(), "-cert", cert.to_str().unwrap(), extra, "-reqout"];
        let made = run("openssl", &[&args[..], &[out.to_str().unwrap()]].concat());
        assert!(made.ok, "{}", made.text);
        requests.push((name, std::fs::read(&out).unwrap()));
    }
    let mut refused = 0;
    for (name, der) in &requests {
        // The DER original is answered with a signed response.
        let r = http().post(&url).header("content-type", "application/ocsp-request").body(der.clone()).send().await;
        let body = r.unwrap().bytes().await.unwrap();
        assert!(body.len() > 100 && body[..] != *MALFORMED, "{name}: the DER request was not answered");
        let mut variants = ber_variants(der);
        variants.push(("serial with a leading zero".into(), padded_serial(der)));
        for (what, ber) in variants {
            assert!(cloudca::status::ocsp::request::parse(&ber).is_err(), "{name}: {what} parsed");
            let r = http().post(&url).header("content-type", "application/ocsp-request").body(ber.clone()).send().await;
            let body = r.unwrap().bytes().await.unwrap();
            assert_eq!(body.as_ref(), MALFORMED, "{name}: {what} ({}) was not malformedRequest", hex::encode(&ber));
            refused += 1;
        }
    }
    assert!(refused > 40, "only {refused} variants");
}
