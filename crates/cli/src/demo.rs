//! `estafette demo`: builds the example network and exchanges sealed packets between its
//! bureaus, exactly as nodes will: seal at the origin, verify (and fail to open) at the relay
//! hub, open at the recipient, and a signed receipt back.
//!
//! The exchange runs in this one process; carrying the packets between node processes over QUIC
//! is the node's job, and the demo will drive real nodes once they exist.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow, bail, ensure};
use estafette_node::network::{self, NetworkDir, NewBureau, unix_ms};
use estafette_packet::{
    Body, BureauCode, GroupName, Handling, Header, Identity, Kind, Letter, Limits, OpenError,
    Packet, PacketId, Precedence, Receipt, Roster, Suite, open, seal, verify,
};
use rand_core::UnwrapErr;

use crate::Failure;

/// The example network: code, address, and whether it is the hub.
const BUREAUS: [(&str, &str); 4] = [
    ("BR", "127.0.0.1:7401"),
    ("CV", "127.0.0.1:7402"),
    ("GH", "127.0.0.1:7403"),
    ("NG", "127.0.0.1:7404"),
];

pub(crate) fn run(dir: Option<PathBuf>) -> Result<(), Failure> {
    let tmp;
    let (dir, kept) = match dir {
        Some(d) => (d, true),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            (tmp.path().join("example-net"), false)
        }
    };
    demo(&dir, kept).map_err(Failure::from)
}

fn demo(dir: &Path, kept: bool) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let net = NetworkDir::new(dir);
    net.init("example-net", now, network::DEFAULT_CA_DAYS)?;
    for (code, addr) in BUREAUS {
        net.add_bureau(
            &NewBureau {
                code: BureauCode::new(code)?,
                name: None,
                address: Some(addr.to_owned()),
                groups: vec![GroupName::new("CRIMJUST")?],
                cert_days: network::DEFAULT_CERT_DAYS,
            },
            now,
        )?;
    }
    let roster = net.roster()?;
    println!(
        "built network {} in {}: {} bureaus, roster version {}, group CRIMJUST",
        roster.network,
        dir.display(),
        roster.bureaus.len(),
        roster.version
    );
    let id = |code: &str| -> anyhow::Result<Identity> {
        let c = BureauCode::new(code)?;
        Ok(network::load_identity(
            &net.bureau_dir(&c).join("identity.key"),
        )?)
    };
    let (br, cv, gh, ng) = (id("BR")?, id("CV")?, id("GH")?, id("NG")?);
    let now_ms = unix_ms(now)?;
    let mut rng = UnwrapErr(getrandom::SysRng);

    // 1. A case notice BR → GH, carried through the hub CV.
    let body = Body::Letter(Letter {
        sender: br.code().clone(),
        case_ref: Some("BR-2026-0042".into()),
        subject: "Notice: person sought for fraud".into(),
        in_reply_to: None,
        content_type: "text/plain; charset=utf-8".into(),
        content: b"Subject believed to travel to Accra this week.".to_vec(),
    });
    let h = header(&br, &roster, &["GH"], Kind::Letter, now_ms, &mut rng)?;
    let packet = seal(&br, &roster, h, &body, &mut rng)?;
    let wire = packet.encode();
    println!(
        "BR sealed case notice {} for GH ({} bytes on the wire)",
        packet.header().id,
        wire.len()
    );

    let mut at_cv = Packet::decode(&wire, &Limits::default())?;
    verify(&at_cv, &roster, now_ms)?;
    match open(&at_cv, &roster, &cv, now_ms) {
        Err(OpenError::NotARecipient(_)) => {}
        other => bail!("the hub CV should not be able to open the notice, got {other:?}"),
    }
    at_cv.route.hop_limit -= 1;
    at_cv.route.hops.push(cv.code().clone());
    println!("CV (hub) verified BR's signature, could not read the content, relayed it");

    let at_gh = Packet::decode(&at_cv.encode(), &Limits::default())?;
    let opened = open(&at_gh, &roster, &gh, now_ms)?;
    let Body::Letter(letter) = &opened.body else {
        bail!("GH opened something other than a letter")
    };
    println!(
        "GH opened it: {:?} (case {})",
        letter.subject,
        letter.case_ref.as_deref().unwrap_or("-")
    );

    // 2. GH's signed receipt back to BR.
    let receipt = Body::Receipt(Receipt {
        sender: gh.code().clone(),
        packet_id: at_gh.header().id,
        packet_digest: at_gh.digest(),
        delivered_at_ms: now_ms,
    });
    let h = header(&gh, &roster, &["BR"], Kind::Receipt, now_ms, &mut rng)?;
    let r = seal(&gh, &roster, h, &receipt, &mut rng)?;
    let r = open(
        &Packet::decode(&r.encode(), &Limits::default())?,
        &roster,
        &br,
        now_ms,
    )?;
    let Body::Receipt(r) = r.body else {
        bail!("BR got something other than a receipt")
    };
    ensure!(
        r.packet_digest == packet.digest(),
        "the receipt names another packet"
    );
    println!("BR verified GH's signed receipt for {}", r.packet_id);

    // 3. A diffusion to the CRIMJUST group: one packet, the content key wrapped per member.
    let body = Body::Letter(Letter {
        sender: br.code().clone(),
        case_ref: None,
        subject: "Diffusion: stolen vehicle alert".into(),
        in_reply_to: None,
        content_type: "text/plain; charset=utf-8".into(),
        content: b"Plates BR-1234, last seen heading north.".to_vec(),
    });
    let members = roster
        .expand(&["CRIMJUST"])
        .map_err(|n| anyhow!("unknown group {n}"))?;
    let others: Vec<&str> = members
        .iter()
        .map(BureauCode::as_str)
        .filter(|c| *c != "BR")
        .collect();
    let h = header(&br, &roster, &others, Kind::Letter, now_ms, &mut rng)?;
    let diffusion = seal(&br, &roster, h, &body, &mut rng)?;
    for member in [&cv, &gh, &ng] {
        let o = open(&diffusion, &roster, member, now_ms)?;
        ensure!(o.body == body, "{} read something else", member.code());
    }
    println!("BR sent a diffusion to CRIMJUST; CV, GH and NG each opened their own copy");
    if kept {
        println!("demo ok: keys and certificates are in {}", dir.display());
    } else {
        println!("demo ok (the temporary network is removed now; keep one with --dir DIR)");
    }
    Ok(())
}

fn header(
    from: &Identity,
    roster: &Roster,
    to: &[&str],
    kind: Kind,
    now_ms: u64,
    rng: &mut UnwrapErr<getrandom::SysRng>,
) -> anyhow::Result<Header> {
    Ok(Header {
        suite: Suite::Ed25519X25519ChaCha20,
        id: PacketId::random(rng),
        origin: from.code().clone(),
        recipients: roster
            .expand(to)
            .map_err(|n| anyhow!("unknown recipient {n}"))?,
        created_at_ms: now_ms,
        expires_at_ms: now_ms + Duration::from_secs(7 * 86_400).as_millis() as u64,
        precedence: Precedence::Routine,
        handling: Handling::default(),
        kind,
    })
}
