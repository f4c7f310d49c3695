use anyhow::Result;
use clap::Args;
use tasklm_hub::{catalog, pull};

#[derive(Args)]
pub struct PullArgs {
    /// A catalog name (see `tasklm list`).
    pub name: String,
}

pub fn run(a: PullArgs) -> Result<()> {
    let entry = catalog::find(&a.name).ok_or_else(|| tasklm_hub::HubError::UnknownModel {
        name: a.name.clone(),
        known: catalog::names(),
    })?;
    let path = pull::pull(entry, true)?;
    println!("{}", path.display());
    Ok(())
}

pub fn list() -> Result<()> {
    println!("{:<24} {:<8} description", "name", "cached");
    for e in catalog::CATALOG {
        let cached = if pull::cached(e).is_some() {
            "yes"
        } else {
            "no"
        };
        println!("{:<24} {:<8} {}", e.name, cached, e.description);
    }
    println!("cache: {}", pull::cache_root().display());
    Ok(())
}
