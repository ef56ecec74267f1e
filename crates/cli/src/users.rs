//! `passerelle users`: the web application's local accounts (add, list, disable,
//! reset-password), in the hub's state store under `--data-dir`. Passwords are read
//! from standard input (one line) or `PASSERELLE_PASSWORD`, never from an argument
//! (arguments show in `ps`), and stored only as argon2id hashes.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use passerelle_hub::{HubState, Role, WebStore};

/// Arguments of `passerelle users`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an account (password on standard input or in PASSERELLE_PASSWORD).
    Add {
        login: String,
        /// conseiller, operateur, dpo or admin.
        #[arg(long)]
        role: Role,
        /// The organisation of a conseiller or operateur: ML structure code or CD code.
        #[arg(long)]
        org: Option<String>,
    },
    /// List the accounts (no hash is printed).
    List,
    /// Disable an account and end its sessions.
    Disable { login: String },
    /// Set a new password (standard input or PASSERELLE_PASSWORD), re-enabling the account.
    ResetPassword { login: String },
}

/// Opens the web store of the hub's state: where `[state] url` says, else the state
/// database under `data_dir` (created when missing, private).
pub async fn open_store(
    config: &passerelle_runtime::config::HubConfig,
    data_dir: &std::path::Path,
) -> Result<(HubState, WebStore)> {
    use passerelle_connector::safe_fs::{private_dir, private_file};
    if config.state.url.is_none() {
        private_dir(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join("state.sqlite");
        private_file(&path).with_context(|| format!("cannot make {} private", path.display()))?;
    }
    let state = passerelle_runtime::wiring::open_state(config, data_dir).await?;
    let web = WebStore::open(&state)
        .await
        .context("cannot open the web accounts")?;
    Ok((state, web))
}

fn read_password() -> Result<String> {
    if let Ok(p) = std::env::var("PASSERELLE_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn hash(password: &str) -> Result<String> {
    passerelle_server::web::hash_password(password).map_err(|e| {
        // The rules' messages are French (shown on pages too); the CLI says which rule.
        match e {
            passerelle_server::web::PasswordError::TooShort => anyhow::anyhow!(
                "the password is too short: at least {} characters",
                passerelle_server::web::auth::MIN_PASSWORD_CHARS
            ),
            passerelle_server::web::PasswordError::Common => {
                anyhow::anyhow!("the password is too common: choose another one")
            }
            passerelle_server::web::PasswordError::Hash => {
                anyhow::anyhow!("cannot hash the password")
            }
        }
    })
}

/// Checks a login and a role's organisation (pure).
pub fn check_account(login: &str, role: Role, org: Option<&str>) -> Result<()> {
    if login.is_empty()
        || login.len() > 64
        || !login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
    {
        bail!("login `{login}`: 1 to 64 letters, digits, `.`, `-`, `_` or `@`");
    }
    match (role.scoped(), org) {
        (true, None) => bail!(
            "role {} needs --org (an ML structure code or a CD code)",
            role.as_str()
        ),
        (false, Some(_)) => bail!("role {} covers every organisation: no --org", role.as_str()),
        (true, Some(o)) => {
            let b = o.as_bytes();
            let ml = b.len() == 8
                && b[..5].iter().all(u8::is_ascii_digit)
                && b[5] == b'S'
                && b[6..].iter().all(u8::is_ascii_digit);
            let cd = o.len() == 5
                && o.starts_with("CD")
                && o[2..].chars().all(|c| c.is_ascii_alphanumeric());
            if !ml && !cd {
                bail!("--org `{o}`: expected an ML structure code (59350S00) or a CD code (CD059)");
            }
        }
        (false, None) => {}
    }
    Ok(())
}

/// Creates an account with this password (used by `users add` and the demo).
pub async fn add(
    web: &WebStore,
    login: &str,
    role: Role,
    org: Option<&str>,
    password: &str,
) -> Result<()> {
    check_account(login, role, org)?;
    let h = hash(password)?;
    web.add_account(login, &h, role, org).await?;
    Ok(())
}

pub async fn run(globals: &crate::Globals, args: Args) -> Result<ExitCode> {
    let config = passerelle_runtime::config::HubConfig::load_or_default(&globals.config)?;
    let (state, web) = open_store(&config, &globals.data_dir).await?;
    let out = match args.command {
        Command::Add { login, role, org } => {
            check_account(&login, role, org.as_deref())?;
            let password = read_password()?;
            add(&web, &login, role, org.as_deref(), &password).await?;
            format!(
                "account {login} created ({}{})",
                role.as_str(),
                org.map(|o| format!(", {o}")).unwrap_or_default()
            )
        }
        Command::List => {
            let mut s = String::from("login\trole\torganisation\tstate\tcreated\n");
            for a in web.accounts().await? {
                s.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    a.login,
                    a.role.as_str(),
                    a.org.as_deref().unwrap_or("-"),
                    if a.disabled { "disabled" } else { "active" },
                    a.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            s.trim_end().to_owned()
        }
        Command::Disable { login } => {
            web.disable(&login).await?;
            format!("account {login} disabled, its sessions ended")
        }
        Command::ResetPassword { login } => {
            if web.account(&login).await?.is_none() {
                bail!("no account `{login}`");
            }
            let h = hash(&read_password()?)?;
            web.set_password(&login, &h).await?;
            format!("password of {login} changed, its sessions ended")
        }
    };
    state.close().await;
    #[allow(clippy::print_stdout)]
    {
        println!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked() {
        assert!(check_account("alice", Role::Conseiller, Some("59350S00")).is_ok());
        assert!(check_account("bob", Role::Operateur, Some("CD059")).is_ok());
        assert!(check_account("dpo", Role::Dpo, None).is_ok());
        let e = check_account("alice", Role::Conseiller, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs --org"), "{e}");
        assert!(check_account("x", Role::Admin, Some("CD059")).is_err());
        assert!(check_account("a b", Role::Admin, None).is_err());
        assert!(check_account("c", Role::Conseiller, Some("5935")).is_err());
    }
}
