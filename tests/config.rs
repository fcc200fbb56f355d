//! Every example configuration in `config/` parses and agrees with `certs-example/`: its pinned
//! authority key verifies the roster, its bureau is in the roster, and its identity key is the
//! one the roster lists.

use std::path::Path;

use estafette_node::config::NodeConfig;
use estafette_node::network::load_roster;
use estafette_packet::Identity;

#[test]
fn example_configs_parse_and_match_the_example_network() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let config = NodeConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let roster = load_roster(&config.roster, &config.authority_key)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(roster.network, config.network);
        let entry = roster
            .bureau(&config.bureau)
            .expect("the bureau is in the roster");
        // Git does not keep file modes, so read the example key without the 0600 check.
        let id = Identity::from_key_file(&std::fs::read_to_string(&config.identity_key).unwrap())
            .unwrap();
        assert_eq!(id.code(), &config.bureau);
        assert_eq!(id.signing_public(), entry.signing_key);
        assert_eq!(id.encryption_public(), entry.encryption_key);
        for r in &config.routes {
            assert!(
                roster.bureau(&r.to).is_some() && roster.bureau(&r.via).is_some(),
                "{r:?}"
            );
        }
        for f in [&config.tls_cert, &config.tls_key, &config.ca_cert] {
            assert!(f.is_file(), "{}", f.display());
        }
        seen.push(config.bureau.to_string());
    }
    seen.sort();
    assert_eq!(seen, ["BR", "CV", "GH", "NG"]);
}
