//! `token`, `audit`, `passwd`, `gen-certs`: who may use the API and the broker, and the
//! tamper-evident audit log.

use aggregator::query;
use anyhow::{Context, bail};

use super::args::*;

/// `aggregator token`.
pub fn token(a: TokenArgs) -> anyhow::Result<()> {
    let TokenArgs { action } = a;
    match action {
        TokenCmd::Create {
            name,
            role,
            expires,
            db,
        } => {
            let now = sharpeyes_wire::now_ms();
            let expires_ms = expires
                .as_deref()
                .map(aggregator::api::params::duration_ms)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires: {e}"))?
                .map(|d| now.saturating_add(d));
            let entry = aggregator::service::cli_entry(
                "tokens.create",
                &aggregator::service::Why::default(),
                serde_json::json!({"name": name, "role": role}),
                1,
            );
            let (token, row) = db
                .open_or_create()?
                .audited(&entry, |s| {
                    aggregator::api::access::create_token(s, &name, &role, expires_ms, now)
                        .map(Some)
                })?
                .context("no token made")?;
            eprintln!(
                "token {} ({}{}); shown only now:",
                row.name,
                row.role,
                row.expires_ms
                    .map(|e| format!(", expires {}", query::utc(e)))
                    .unwrap_or_default()
            );
            println!("{token}");
        }
        TokenCmd::List { json, db } => {
            let rows = db.open()?.tokens()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for t in &rows {
                    let when = |ms: Option<i64>| ms.map(query::utc).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<24} {:<9} created {}  expires {}  revoked {}",
                        t.name,
                        t.role,
                        query::utc(t.created_ms),
                        when(t.expires_ms),
                        when(t.revoked_ms)
                    );
                }
                println!("{} token(s)", rows.len());
            }
        }
        TokenCmd::Revoke { name, db } => {
            let entry = aggregator::service::cli_entry(
                "tokens.revoke",
                &aggregator::service::Why::default(),
                serde_json::json!({"name": name}),
                1,
            );
            let done = db.open()?.audited(&entry, |s| {
                Ok::<_, aggregator::store::StoreError>(
                    s.revoke_token(&name, sharpeyes_wire::now_ms())?
                        .then_some(()),
                )
            })?;
            if done.is_none() {
                bail!("no token {name:?}, or revoked already (see `aggregator token list`)");
            }
            println!("revoked {name}");
        }
    };
    Ok(())
}

/// `aggregator audit`.
pub fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let AuditArgs { action } = a;
    match action {
        AuditCmd::Verify {
            checkpoints,
            public_keys,
            key,
            db,
        } => {
            let store = db.open()?;
            let mut trust = aggregator::store::audit::AuditTrust {
                keys: public_keys
                    .iter()
                    .map(|k| k.trim().to_lowercase())
                    .collect(),
                witnessed: Vec::new(),
            };
            for k in &trust.keys {
                if aggregator::store::audit::unhex(k).is_none_or(|b| b.len() != 32) {
                    bail!(
                        "--public-key {k:?} is not 64 hex digits (aggregator audit public-key prints it)"
                    );
                }
            }
            let key_file = key.path(&db)?;
            if trust.keys.is_empty() && key_file.exists() {
                trust
                    .keys
                    .push(aggregator::witness::AuditKey::load(&key_file)?.public_hex());
            }
            for f in &checkpoints {
                trust.witnessed.extend(aggregator::witness::read(f)?);
            }
            let stored = store.audit_checkpoints()?.len();
            if trust.keys.is_empty() && stored + trust.witnessed.len() > 0 {
                eprintln!(
                    "cannot check the checkpoints' signatures: no audit key at {} (give --public-key HEX from `aggregator audit public-key`, or --key FILE)",
                    key_file.display()
                );
                std::process::exit(2);
            }
            let v = store.audit_verify_with(&trust)?;
            match v.broken {
                None if v.checkpoints == 0 => println!(
                    "ok: {} entries, head {}; no checkpoints: the newest entries are not anchored (run the aggregator, or `aggregator audit checkpoint --out FILE`)",
                    v.entries,
                    v.head.as_deref().unwrap_or("-")
                ),
                None => println!(
                    "ok: {} entries, head {}, {} checkpoints ({} stored, {} witnessed) signed by {}",
                    v.entries,
                    v.head.as_deref().unwrap_or("-"),
                    v.checkpoints,
                    stored,
                    trust.witnessed.len(),
                    trust.keys.join(", ")
                ),
                Some(b) => {
                    println!(
                        "broken at entry {}: {} ({} entries before it verified)",
                        b.seq, b.what, v.entries
                    );
                    std::process::exit(1);
                }
            }
        }
        AuditCmd::Keygen { key, db } => {
            let path = key.path(&db)?;
            let k = aggregator::witness::AuditKey::generate(&path)?;
            eprintln!(
                "audit key written to {} (mode 0600); its public key:",
                path.display()
            );
            println!("{}", k.public_hex());
        }
        AuditCmd::PublicKey { key, db } => {
            let path = key.path(&db)?;
            println!(
                "{}",
                aggregator::witness::AuditKey::load(&path)?.public_hex()
            );
        }
        AuditCmd::Checkpoint { out, key, db } => {
            let store = db.open()?;
            let k = aggregator::witness::AuditKey::load_or_create(&key.path(&db)?)?;
            let c = store.audit_checkpoint(&k, sharpeyes_wire::now_ms())?;
            if let Some(out) = &out {
                aggregator::witness::append(out, &c)?;
            }
            println!("{}", serde_json::to_string(&c)?);
        }
        AuditCmd::List {
            limit,
            who,
            json,
            db,
        } => {
            let rows = db
                .open()?
                .audit_entries(&aggregator::store::audit::AuditFilter {
                    who,
                    limit: Some(limit),
                    ..Default::default()
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &rows {
                    println!(
                        "{:>6} {} {:<16} {:<8} {:<24} {} case={} purpose={:?} results={} {}",
                        r.seq,
                        query::utc(r.ts_ms),
                        r.who,
                        r.role,
                        r.action,
                        r.status,
                        r.case_ref.as_deref().unwrap_or("-"),
                        r.purpose.as_deref().unwrap_or(""),
                        r.result_count.map(|n| n.to_string()).unwrap_or("-".into()),
                        r.params_json
                    );
                }
            }
        }
    };
    Ok(())
}

/// `aggregator passwd`.
pub fn passwd(a: PasswdArgs) -> anyhow::Result<()> {
    let PasswdArgs {
        file,
        user,
        stdin,
        generate,
    } = a;
    use aggregator::broker::passwd;
    let password = if generate {
        passwd::random_password(24)?
    } else if stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        bail!("give --stdin (password on standard input) or --generate");
    };
    if password.is_empty() {
        bail!("empty password");
    }
    passwd::set_password(&file, &user, &password)?;
    if generate {
        println!("{password}");
    }

    Ok(())
}

/// `aggregator gen-certs`.
pub fn gen_certs(a: GenCertsArgs) -> anyhow::Result<()> {
    let GenCertsArgs { out, hosts, force } = a;
    let f = aggregator::pki::generate(&out, &hosts, force)?;
    println!(
        "CA certificate   {}\nCA key           {}  (keep offline)\nbroker cert      {}\nbroker key       {}",
        f.ca_cert.display(),
        f.ca_key.display(),
        f.server_cert.display(),
        f.server_key.display()
    );

    Ok(())
}
