//! `cloudca --config FILE approval create --profile NAME --phone E164 --subject "/C=CN/CN=.../serialNumber=..."`:
//! records that an identity, reachable at a phone, may hold a certificate of a profile (the
//! holder then sets a PIN in the app, which generates the key and issues the certificate).

use std::sync::Arc;

use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::Instance;

/// `approval` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create an approval.
    Create {
        /// Profile name (`org`, `personal`).
        #[arg(long)]
        profile: String,
        /// The holder's phone, E.164 (`+8613800138000`).
        #[arg(long)]
        phone: String,
        /// The subject as openssl writes it: `/C=CN/CN=张三/serialNumber=11010519491231002X`.
        #[arg(long)]
        subject: String,
        /// Organisation certificates: the agent who will hold the key, `NAME/ID_NUMBER`; the
        /// identity proof before the first PIN checks this person.
        #[arg(long, value_name = "NAME/ID_NUMBER")]
        holder: Option<String>,
    },
}

/// Splits `/K=V/K=V` into pairs; `\/` escapes a slash inside a value.
pub(crate) fn parse_subject(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let body = text.strip_prefix('/').ok_or_else(|| anyhow::anyhow!("the subject starts with '/': /C=CN/CN=..."))?;
    let mut pairs = Vec::new();
    for part in body.replace("\\/", "\u{0}").split('/') {
        let (k, v) = part.split_once('=').ok_or_else(|| anyhow::anyhow!("{part:?} is not ATTRIBUTE=value"))?;
        anyhow::ensure!(!k.is_empty() && !v.is_empty(), "{part:?}: empty attribute or value");
        pairs.push((k.to_string(), v.replace('\u{0}', "/")));
    }
    Ok(pairs)
}

/// Runs an `approval` command.
pub fn run(action: Action, config: Config) -> anyhow::Result<()> {
    let Action::Create { profile, phone, subject, holder } = action;
    let subject = parse_subject(&subject)?;
    let holder = holder
        .map(|h| match h.rsplit_once('/') {
            Some((name, id_number)) => {
                Ok(crate::store::HolderIdentity { name: name.into(), id_number: id_number.into() })
            }
            None => Err(anyhow::anyhow!("--holder: NAME/ID_NUMBER")),
        })
        .transpose()?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let instance = Instance::open(config, Arc::new(SystemClock)).await?;
        let approval = instance.custody.create_approval(&profile, subject, &phone, holder, "cli").await?;
        println!("approval {} for {} ({}): the holder can now set a PIN in the app", approval.id, phone, profile);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_order_with_escaped_slashes() {
        let s = parse_subject("/C=CN/O=A\\/B Ltd/CN=张三").unwrap();
        assert_eq!(s, vec![("C".into(), "CN".into()), ("O".into(), "A/B Ltd".into()), ("CN".into(), "张三".into())]);
        assert!(parse_subject("C=CN").is_err());
        assert!(parse_subject("/C").is_err());
    }
}
