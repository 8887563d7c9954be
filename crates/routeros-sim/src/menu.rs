//! The menus of generated configurations and their items: realistic `add …` lines
//! whose values come from a SplitMix64 stream seeded by device, menu and item number.
//!
//! Pure and stable across crate upgrades (no dependency on `rand`'s algorithms).
//! Entry points: [`MENUS`], [`item`], [`SplitMix`].

/// SplitMix64: a tiny, fixed pseudo-random generator (not for cryptography).
pub(crate) struct SplitMix(u64);

impl SplitMix {
    /// A generator for `(device, menu, item)`.
    pub(crate) fn for_item(device: usize, menu: usize, item: usize) -> Self {
        let mut g = SplitMix(0x5EED_0FC0_FFEE_0000 ^ device as u64);
        let a = g.next_u64() ^ ((menu as u64) << 32);
        SplitMix(a ^ item as u64).skip()
    }

    fn skip(mut self) -> Self {
        self.next_u64();
        self
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "office", "guest", "cameras", "voip", "printers", "lab", "storage", "backup", "mgmt", "uplink",
    "wifi", "servers", "iot", "finance", "sales", "dev", "dmz", "branch", "core", "edge",
];

/// What an item generator gets: its random stream, the device and item numbers.
struct Item {
    rng: SplitMix,
    dev: usize,
    i: usize,
    sensitive: bool,
}

impl Item {
    fn word(&mut self) -> &'static str {
        self.rng.pick(WORDS)
    }

    fn vlan(&self) -> usize {
        10 + self.i % 4080
    }

    /// The `/24` of this item: `10.x.y`.
    fn net(&self) -> String {
        format!(
            "10.{}.{}",
            (self.dev * 7 + self.i / 256) % 256,
            self.i % 256
        )
    }

    fn mac(&mut self) -> String {
        let r = self.rng.next_u64();
        format!(
            "4C:5E:0C:{:02X}:{:02X}:{:02X}",
            r & 0xff,
            (r >> 8) & 0xff,
            (r >> 16) & 0xff
        )
    }
}

/// One menu of the generated configuration.
pub(crate) struct Menu {
    /// The menu line, e.g. `/ip address`.
    pub(crate) path: &'static str,
    /// Share of the generated lines.
    pub(crate) weight: usize,
    item: fn(&mut Item) -> String,
}

/// The menus, in export order.
pub(crate) const MENUS: &[Menu] = &[
    Menu {
        path: "/interface bridge",
        weight: 1,
        item: bridge,
    },
    Menu {
        path: "/interface vlan",
        weight: 3,
        item: vlan,
    },
    Menu {
        path: "/ip pool",
        weight: 2,
        item: pool,
    },
    Menu {
        path: "/ppp secret",
        weight: 2,
        item: ppp_secret,
    },
    Menu {
        path: "/ip address",
        weight: 4,
        item: address,
    },
    Menu {
        path: "/ip dhcp-server lease",
        weight: 8,
        item: lease,
    },
    Menu {
        path: "/ip dns static",
        weight: 4,
        item: dns,
    },
    Menu {
        path: "/ip firewall address-list",
        weight: 6,
        item: address_list,
    },
    Menu {
        path: FILTER,
        weight: 10,
        item: filter,
    },
    Menu {
        path: "/ip firewall nat",
        weight: 3,
        item: nat,
    },
    Menu {
        path: "/ip route",
        weight: 4,
        item: route,
    },
];

/// The firewall filter menu (long, wrapped items; used by the huge export).
pub(crate) const FILTER: &str = "/ip firewall filter";

fn bridge(it: &mut Item) -> String {
    let (mac, word) = (it.mac(), it.word());
    format!(
        "add admin-mac={mac} auto-mac=no comment={word} name=bridge{}",
        it.i + 1
    )
}

fn vlan(it: &mut Item) -> String {
    let v = it.vlan();
    format!(
        "add comment=\"{} vlan\" interface=bridge1 name=vlan{v} vlan-id={v}",
        it.word()
    )
}

fn pool(it: &mut Item) -> String {
    let net = it.net();
    format!("add name=pool-vlan{} ranges={net}.100-{net}.199", it.vlan())
}

fn ppp_secret(it: &mut Item) -> String {
    let word = it.word();
    let password = if it.sensitive {
        format!(" password=S1m-{:08x}", it.rng.next_u64() as u32)
    } else {
        String::new()
    };
    format!(
        "add name=vpn-{word}{}{password} profile=default-encryption service=l2tp",
        it.i
    )
}

fn address(it: &mut Item) -> String {
    let net = it.net();
    let word = it.word();
    format!(
        "add address={net}.1/24 comment={word} interface=vlan{} network={net}.0",
        it.vlan()
    )
}

fn lease(it: &mut Item) -> String {
    let (net, mac) = (it.net(), it.mac());
    let host = 10 + it.rng.below(200);
    let (a, b) = (it.word(), it.word());
    let client = mac.to_ascii_lowercase();
    format!(
        "add address={net}.{host} client-id=1:{client} comment=\"{a} {b} {}\" mac-address={mac} \
         server=dhcp-vlan{}",
        it.i,
        it.vlan()
    )
}

fn dns(it: &mut Item) -> String {
    let host = 2 + it.rng.below(250);
    let word = it.word();
    format!(
        "add address={}.{host} name={word}-{}.dev{}.example.lan ttl=1h",
        it.net(),
        it.i,
        it.dev
    )
}

fn address_list(it: &mut Item) -> String {
    let host = 1 + it.rng.below(254);
    let (a, b, list) = (it.word(), it.word(), it.word());
    format!("add address=203.0.113.{host} comment=\"{a} {b}\" list={list}-hosts")
}

fn filter(it: &mut Item) -> String {
    let action = it.rng.pick(&["accept", "drop", "reject"]);
    let chain = it.rng.pick(&["forward", "input"]);
    let proto = it.rng.pick(&["tcp", "udp"]);
    let port = 1024 + it.rng.below(60000);
    let (a, b, list) = (it.word(), it.word(), it.word());
    format!(
        "add action={action} chain={chain} comment=\"{a} {b} rule {}\" connection-state=new \
         dst-address={}.0/24 dst-port={port} in-interface-list=LAN protocol={proto} \
         src-address-list={list}-hosts",
        it.i,
        it.net()
    )
}

fn nat(it: &mut Item) -> String {
    let port = 1024 + it.rng.below(60000);
    let host = 2 + it.rng.below(250);
    let word = it.word();
    format!(
        "add action=dst-nat chain=dstnat comment=\"{word} forward {}\" dst-port={port} \
         in-interface-list=WAN protocol=tcp to-addresses={}.{host} to-ports={port}",
        it.i,
        it.net()
    )
}

fn route(it: &mut Item) -> String {
    let distance = 1 + it.rng.below(5);
    let word = it.word();
    format!(
        "add comment=\"{word} route\" disabled=no distance={distance} dst-address=172.{}.{}.0/24 \
         gateway={}.254",
        16 + it.i / 256 % 16,
        it.i % 256,
        it.net()
    )
}

/// Item `i` of menu `m` for device `dev`, as one logical line.
pub(crate) fn item(m: usize, dev: usize, i: usize, sensitive: bool) -> String {
    let mut it = Item {
        rng: SplitMix::for_item(dev, m, i),
        dev,
        i,
        sensitive,
    };
    (MENUS[m].item)(&mut it)
}
