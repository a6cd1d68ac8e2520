//! The Sysmon event catalogue: ids, names, config tags, XML header values and the ordered
//! field list of every event (schema 4.81). The one source of truth for field names and
//! order: the renderer, the rules engine, `-s` and the viewer all read it from here.

/// One Sysmon event type.
#[derive(Debug)]
pub struct EventKind {
    pub id: u16,
    /// Manifest name, e.g. `SYSMONEVENT_CREATE_PROCESS` (the viewer prints it).
    pub name: &'static str,
    /// Config element name (`rulename`), e.g. `ProcessCreate`; `None` for events that are
    /// never filtered (4, 16, 255).
    pub tag: Option<&'static str>,
    /// XML `<Version>`.
    pub version: u8,
    /// XML `<Level>`: 4 informational, 2 error.
    pub level: u8,
    /// Manifest `ruledefault`: logged when the config has no rules for it.
    pub default_on: bool,
    /// Produced on Linux (the others are accepted in configs only).
    pub linux: bool,
    /// `<Data Name=…>` elements, in output order.
    pub fields: &'static [&'static str],
    /// How many of `fields` are Sysmon's own; the container fields ([`CONTAINER_FIELDS`],
    /// and `ParentContainerId` for ProcessCreate) follow them in events about a process.
    pub own: usize,
}

/// Fields appended to every event about what a process did (`-` for a host process).
pub const CONTAINER_FIELDS: [&str; 6] = [
    "ContainerId",
    "ContainerName",
    "ContainerImage",
    "ContainerRuntime",
    "PodName",
    "PodNamespace",
];

impl EventKind {
    /// Whether it carries the container fields.
    pub fn has_containers(&self) -> bool {
        self.fields.len() > self.own
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| *f == name)
    }
}

pub const SCHEMA_VERSION: &str = "4.81";

pub const PROCESS_CREATE: u16 = 1;
pub const FILE_CREATE_TIME: u16 = 2;
pub const NETWORK_CONNECT: u16 = 3;
pub const SERVICE_STATE: u16 = 4;
pub const PROCESS_TERMINATE: u16 = 5;
pub const IMAGE_LOAD: u16 = 7;
pub const CREATE_REMOTE_THREAD: u16 = 8;
pub const RAW_ACCESS_READ: u16 = 9;
pub const PROCESS_ACCESS: u16 = 10;
pub const FILE_CREATE: u16 = 11;
pub const CONFIG_CHANGE: u16 = 16;
pub const PIPE_CREATED: u16 = 17;
pub const PIPE_CONNECTED: u16 = 18;
pub const DNS_QUERY: u16 = 22;
pub const FILE_DELETE: u16 = 23;
pub const PROCESS_TAMPERING: u16 = 25;
pub const FILE_EXECUTABLE_DETECTED: u16 = 29;
pub const ERROR: u16 = 255;

macro_rules! kind {
    ($id:expr, $name:literal, $tag:expr, version $version:literal, level $level:literal, $on:literal, $linux:literal, [$($f:literal),* $(,)?]) => {
        EventKind { id: $id, name: $name, tag: $tag, version: $version, level: $level,
                    default_on: $on, linux: $linux, fields: &[$($f),*], own: [$($f),*].len() }
    };
    // An event about what a process did: the container fields follow Sysmon's (in the
    // order of CONTAINER_FIELDS, and ParentContainerId after them with `parent`).
    ($id:expr, $name:literal, $tag:expr, version $version:literal, level $level:literal, $on:literal, $linux:literal, [$($f:literal),* $(,)?] + containers $($parent:ident)?) => {
        EventKind { id: $id, name: $name, tag: $tag, version: $version, level: $level,
                    default_on: $on, linux: $linux,
                    fields: &[$($f,)* "ContainerId", "ContainerName", "ContainerImage",
                              "ContainerRuntime", "PodName", "PodNamespace"
                              $(, kind!(@$parent))?],
                    own: [$($f),*].len() }
    };
    (@parent) => { "ParentContainerId" };
}

/// Every event, in id order.
pub static EVENTS: &[EventKind] = &[
    kind!(PROCESS_CREATE, "SYSMONEVENT_CREATE_PROCESS", Some("ProcessCreate"), version 5, level 4, true, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion", "Description",
        "Product", "Company", "OriginalFileName", "CommandLine", "CurrentDirectory", "User",
        "LogonGuid", "LogonId", "TerminalSessionId", "IntegrityLevel", "Hashes",
        "ParentProcessGuid", "ParentProcessId", "ParentImage", "ParentCommandLine", "ParentUser",
    ] + containers parent),
    kind!(FILE_CREATE_TIME, "SYSMONEVENT_FILE_TIME", Some("FileCreateTime"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetFilename",
        "CreationUtcTime", "PreviousCreationUtcTime", "User",
    ] + containers),
    kind!(NETWORK_CONNECT, "SYSMONEVENT_NETWORK_CONNECT", Some("NetworkConnect"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User", "Protocol",
        "Initiated", "SourceIsIpv6", "SourceIp", "SourceHostname", "SourcePort",
        "SourcePortName", "DestinationIsIpv6", "DestinationIp", "DestinationHostname",
        "DestinationPort", "DestinationPortName",
    ] + containers),
    kind!(SERVICE_STATE, "SYSMONEVENT_SERVICE_STATE_CHANGE", None, version 3, level 4, true, true, [
        "UtcTime", "State", "Version", "SchemaVersion",
    ]),
    kind!(PROCESS_TERMINATE, "SYSMONEVENT_PROCESS_TERMINATE", Some("ProcessTerminate"), version 3, level 4, true, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User",
    ] + containers),
    kind!(6, "SYSMONEVENT_DRIVER_LOAD", Some("DriverLoad"), version 4, level 4, false, false, [
        "RuleName", "UtcTime", "ImageLoaded", "Hashes", "Signed", "Signature", "SignatureStatus",
    ]),
    kind!(IMAGE_LOAD, "SYSMONEVENT_IMAGE_LOAD", Some("ImageLoad"), version 3, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "ImageLoaded", "FileVersion",
        "Description", "Product", "Company", "OriginalFileName", "Hashes", "Signed", "Signature",
        "SignatureStatus", "User",
    ] + containers),
    kind!(CREATE_REMOTE_THREAD, "SYSMONEVENT_CREATE_REMOTE_THREAD", Some("CreateRemoteThread"), version 2, level 4, false, true, [
        "RuleName", "UtcTime", "SourceProcessGuid", "SourceProcessId", "SourceImage",
        "TargetProcessGuid", "TargetProcessId", "TargetImage", "NewThreadId", "StartAddress",
        "StartModule", "StartFunction", "SourceUser", "TargetUser",
    ] + containers),
    kind!(RAW_ACCESS_READ, "SYSMONEVENT_RAWACCESS_READ", Some("RawAccessRead"), version 2, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "Device", "User",
    ] + containers),
    kind!(PROCESS_ACCESS, "SYSMONEVENT_ACCESS_PROCESS", Some("ProcessAccess"), version 3, level 4, false, true, [
        "RuleName", "UtcTime", "SourceProcessGUID", "SourceProcessId", "SourceThreadId",
        "SourceImage", "TargetProcessGUID", "TargetProcessId", "TargetImage", "GrantedAccess",
        "CallTrace", "SourceUser", "TargetUser",
    ] + containers),
    kind!(FILE_CREATE, "SYSMONEVENT_FILE_CREATE", Some("FileCreate"), version 2, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetFilename",
        "CreationUtcTime", "User",
    ] + containers),
    kind!(12, "SYSMONEVENT_REG_KEY", Some("RegistryEvent"), version 2, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetObject",
        "User",
    ]),
    kind!(13, "SYSMONEVENT_REG_SETVALUE", Some("RegistryEvent"), version 2, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetObject",
        "Details", "User",
    ]),
    kind!(14, "SYSMONEVENT_REG_NAME", Some("RegistryEvent"), version 2, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetObject",
        "NewName", "User",
    ]),
    kind!(15, "SYSMONEVENT_FILE_CREATE_STREAM_HASH", Some("FileCreateStreamHash"), version 2, level 4, false, false, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetFilename",
        "CreationUtcTime", "Hash", "Contents", "User",
    ]),
    kind!(CONFIG_CHANGE, "SYSMONEVENT_SERVICE_CONFIGURATION_CHANGE", None, version 3, level 4, true, true, [
        "UtcTime", "Configuration", "ConfigurationFileHash",
    ]),
    kind!(PIPE_CREATED, "SYSMONEVENT_CREATE_NAMEDPIPE", Some("PipeEvent"), version 1, level 4, false, true, [
        "RuleName", "EventType", "UtcTime", "ProcessGuid", "ProcessId", "PipeName", "Image", "User",
    ] + containers),
    kind!(PIPE_CONNECTED, "SYSMONEVENT_CONNECT_NAMEDPIPE", Some("PipeEvent"), version 1, level 4, false, true, [
        "RuleName", "EventType", "UtcTime", "ProcessGuid", "ProcessId", "PipeName", "Image", "User",
    ] + containers),
    kind!(19, "SYSMONEVENT_WMI_FILTER", Some("WmiEvent"), version 3, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "Operation", "User", "EventNamespace", "Name", "Query",
    ]),
    kind!(20, "SYSMONEVENT_WMI_CONSUMER", Some("WmiEvent"), version 3, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "Operation", "User", "Name", "Type", "Destination",
    ]),
    kind!(21, "SYSMONEVENT_WMI_BINDING", Some("WmiEvent"), version 3, level 4, false, false, [
        "RuleName", "EventType", "UtcTime", "Operation", "User", "Consumer", "Filter",
    ]),
    kind!(DNS_QUERY, "SYSMONEVENT_DNS_QUERY", Some("DnsQuery"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "QueryName", "QueryStatus",
        "QueryResults", "Image", "User",
    ] + containers),
    kind!(FILE_DELETE, "SYSMONEVENT_FILE_DELETE", Some("FileDelete"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "User", "Image", "TargetFilename",
        "Hashes", "IsExecutable", "Archived",
    ] + containers),
    kind!(24, "SYSMONEVENT_CLIPBOARD", Some("ClipboardChange"), version 5, level 4, false, false, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "Session", "ClientInfo",
        "Hashes", "Archived", "User",
    ]),
    kind!(PROCESS_TAMPERING, "SYSMONEVENT_PROCESS_IMAGE_TAMPERING", Some("ProcessTampering"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "Type", "User",
    ] + containers),
    kind!(26, "SYSMONEVENT_FILE_DELETE_DETECTED", Some("FileDeleteDetected"), version 5, level 4, false, false, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "User", "Image", "TargetFilename",
        "Hashes", "IsExecutable",
    ]),
    // Schema 4.90 (Sysmon 15); accepted in 4.81 configs too.
    kind!(FILE_EXECUTABLE_DETECTED, "SYSMONEVENT_FILE_EXE_DETECTED", Some("FileExecutableDetected"), version 5, level 4, false, true, [
        "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "User", "Image", "TargetFilename",
        "Hashes",
    ] + containers),
    kind!(ERROR, "SYSMONEVENT_ERROR", None, version 3, level 2, true, true, [
        "UtcTime", "ID", "Description",
    ]),
];

pub fn by_id(id: u16) -> Option<&'static EventKind> {
    EVENTS.iter().find(|k| k.id == id)
}

/// Every event with this config tag (several for shared tags such as RegistryEvent).
pub fn by_tag(tag: &str) -> impl Iterator<Item = &'static EventKind> + '_ {
    EVENTS.iter().filter(move |k| k.tag == Some(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        assert!(EVENTS.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn filterable_events_start_with_rulename() {
        for k in EVENTS.iter().filter(|k| k.tag.is_some()) {
            assert_eq!(k.fields[0], "RuleName", "event {}", k.id);
            // Registry, pipe and WMI events carry EventType before UtcTime (manifest 4.81).
            let utc = if k.fields[1] == "EventType" { 2 } else { 1 };
            assert_eq!(k.fields[utc], "UtcTime", "event {}", k.id);
        }
    }
}
