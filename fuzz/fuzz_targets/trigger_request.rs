//! A trigger request (DESIGN.md §3.1) as the responder reads it: JSON, then
//! both ids. No panic; errors bounded and never quoting the payload.
#![no_main]

use cfgsnap::bus::wire::{TriggerRequest, from_json};
use cfgsnap::id::{DeviceId, TenantId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = from_json::<TriggerRequest>(data).and_then(|request| {
        DeviceId::parse(&request.device_id).map_err(|e| e.to_string())?;
        TenantId::parse(&request.tenant_id).map_err(|e| e.to_string())?;
        Ok(())
    });
    if let Err(e) = checked {
        assert!(!e.is_empty() && e.chars().count() <= 300);
    }
});
