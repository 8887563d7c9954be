//! `cfgsnap device move DEVICE --to TENANT`: moves a device and its history
//! to another configured tenant, re-sealed under that tenant's key and
//! audited. Then the configuration may name the new tenant.

use clap::Subcommand;

use super::Exit;
use crate::config::{Fleet, Settings};
use crate::id::{DeviceId, TenantId};
use crate::store::{self, Store};

/// What to do with a device's stored history.
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Move a device and its history to another tenant.
    Move {
        /// The device id.
        #[arg(value_parser = parse_device)]
        device: DeviceId,
        /// The tenant to move it to (one of `[[tenants]]`).
        #[arg(long, value_parser = super::token::parse_tenant)]
        to: TenantId,
    },
}

fn parse_device(s: &str) -> Result<DeviceId, String> {
    DeviceId::parse(s).map_err(|e| e.to_string())
}

/// Runs a `device` subcommand.
pub(super) async fn run(
    settings: &Settings,
    fleet: &Fleet,
    cmd: DeviceCmd,
) -> anyhow::Result<Exit> {
    let DeviceCmd::Move { device, to } = cmd;
    let Some(tenant) = fleet.tenants.iter().find(|t| t.id == to) else {
        eprintln!(
            "error[not_found]: no tenant \"{to}\" in the configuration; add it to [[tenants]] first"
        );
        return Ok(Exit::Failed);
    };
    let store = Store::connect(&settings.store).await?;
    // The targets' tenant filters decide which pending notifications follow.
    store.set_notify_routes(&settings.notify_config()?);
    let moved = store
        .move_device(
            device.as_str(),
            to.as_str(),
            &tenant.name,
            &super::user::actor(),
        )
        .await;
    store.close().await;
    match moved {
        Ok(m) if m.from == m.to => {
            println!("ok: device {device} is in tenant {to} already; nothing moved");
            Ok(Exit::Ok)
        }
        Ok(m) => {
            if m.notifications_given_up > 0 {
                println!(
                    "note: {} pending notification(s) of the device were given up: \
                     their targets do not receive tenant {}",
                    m.notifications_given_up, m.to
                );
            }
            println!(
                "ok: device {device} moved from tenant {} to {} ({} records re-sealed); \
                 now set tenant = \"{}\" for it in the configuration and reload",
                m.from, m.to, m.records, m.to
            );
            Ok(Exit::Ok)
        }
        Err(store::Error::DeviceNotFound) => {
            eprintln!("error[not_found]: the store has no device \"{device}\"");
            Ok(Exit::Failed)
        }
        Err(e) => Err(e.into()),
    }
}
