//! Turning kernel records into Sysmon facts: the process cache, user names, hashes, GUIDs
//! and wall-clock times.

pub mod cache;
pub mod clock;
pub mod containers;
pub mod guid;
pub mod hashes;
pub mod id_map;
pub mod logon;
pub mod modes;
pub mod procfs;
pub mod recent;
pub mod users;

use crate::rules::HashAlgorithms;

/// Where the host's root is, when the agent runs in a container of its own with the host's
/// root mounted elsewhere (the runtimes' files are read under it); `/` by default.
pub const HOST_ROOT: &str = "SYSMON_HOST_ROOT";

/// Everything the event builders look things up in.
pub struct Enrich {
    pub cache: cache::ProcessCache,
    pub users: users::Users,
    pub hasher: hashes::Hasher,
    pub logons: logon::Logons,
    /// UtcTime: follows steps of the wall clock (the cache's GUIDs keep the start offset).
    pub clock: clock::WallClock,
    /// Executable or not, per file, for chmods the kernel could not see (event 29).
    pub modes: modes::Modes,
    /// Events 8 and 10 once a second per target process.
    pub access: crate::events::process_access::AccessLimit,
    /// Which container each cgroup is.
    pub containers: containers::Containers,
}

impl Enrich {
    pub fn new(algs: HashAlgorithms) -> Self {
        let machine = guid::machine_id();
        Enrich {
            cache: cache::ProcessCache::new(machine, clock::Clock::new()),
            users: users::Users::default(),
            hasher: hashes::Hasher::new(algs),
            logons: logon::Logons::new(machine),
            clock: clock::WallClock::new(),
            modes: Default::default(),
            access: Default::default(),
            containers: containers::Containers::new(containers::runtime::Roots {
                prefix: std::env::var_os(HOST_ROOT).map_or("/".into(), Into::into),
            }),
        }
    }
}
