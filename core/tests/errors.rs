//! `cs_error_t`, the setup errno domain and the codec error types: every number of the
//! table of docs/protocol.md §5.8, lossless conversion, and messages that name the C constant.

use corowire::{CsError, DecodeError, EncodeError, SetupError};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The table of §5.8: number, variant, C name.
const TABLE: [(i32, CsError, &str); 29] = [
    (2, CsError::Library, "CS_ERR_LIBRARY"),
    (3, CsError::Version, "CS_ERR_VERSION"),
    (4, CsError::Init, "CS_ERR_INIT"),
    (5, CsError::Timeout, "CS_ERR_TIMEOUT"),
    (6, CsError::TryAgain, "CS_ERR_TRY_AGAIN"),
    (7, CsError::InvalidParam, "CS_ERR_INVALID_PARAM"),
    (8, CsError::NoMemory, "CS_ERR_NO_MEMORY"),
    (9, CsError::BadHandle, "CS_ERR_BAD_HANDLE"),
    (10, CsError::Busy, "CS_ERR_BUSY"),
    (11, CsError::Access, "CS_ERR_ACCESS"),
    (12, CsError::NotExist, "CS_ERR_NOT_EXIST"),
    (13, CsError::NameTooLong, "CS_ERR_NAME_TOO_LONG"),
    (14, CsError::Exist, "CS_ERR_EXIST"),
    (15, CsError::NoSpace, "CS_ERR_NO_SPACE"),
    (16, CsError::Interrupt, "CS_ERR_INTERRUPT"),
    (17, CsError::NameNotFound, "CS_ERR_NAME_NOT_FOUND"),
    (18, CsError::NoResources, "CS_ERR_NO_RESOURCES"),
    (19, CsError::NotSupported, "CS_ERR_NOT_SUPPORTED"),
    (20, CsError::BadOperation, "CS_ERR_BAD_OPERATION"),
    (21, CsError::FailedOperation, "CS_ERR_FAILED_OPERATION"),
    (22, CsError::MessageError, "CS_ERR_MESSAGE_ERROR"),
    (23, CsError::QueueFull, "CS_ERR_QUEUE_FULL"),
    (24, CsError::QueueNotAvailable, "CS_ERR_QUEUE_NOT_AVAILABLE"),
    (25, CsError::BadFlags, "CS_ERR_BAD_FLAGS"),
    (26, CsError::TooBig, "CS_ERR_TOO_BIG"),
    (27, CsError::NoSections, "CS_ERR_NO_SECTIONS"),
    (28, CsError::ContextNotFound, "CS_ERR_CONTEXT_NOT_FOUND"),
    (30, CsError::TooManyGroups, "CS_ERR_TOO_MANY_GROUPS"),
    (100, CsError::Security, "CS_ERR_SECURITY"),
];

#[test]
fn every_spec_number_maps_to_its_variant() {
    for (raw, err, name) in TABLE {
        assert_eq!(CsError::check(raw), Err(err), "{name}");
        assert_eq!(CsError::from_raw(raw), err, "{name}");
        assert_eq!(err.to_raw(), raw, "{name}");
        assert_eq!(err.name(), Some(name));
        assert_eq!(CsError::raw_of(Err(err)), raw);
    }
}

#[test]
fn cs_ok_is_one_and_is_no_error() {
    assert_eq!(CsError::RAW_OK, 1);
    assert_eq!(CsError::check(1), Ok(()));
    assert_eq!(CsError::raw_of(Ok(())), 1);
    assert_eq!(CsError::from_raw(1), CsError::Unknown(1));
}

#[test]
fn numbers_outside_the_table_are_kept() {
    // 29 is the hole in corosync's numbering; 0 and negatives are not defined either.
    for raw in [0, 29, 31, 99, 101, -1, i32::MIN, i32::MAX] {
        assert_eq!(CsError::check(raw), Err(CsError::Unknown(raw)));
        assert_eq!(CsError::Unknown(raw).to_raw(), raw);
        assert_eq!(CsError::Unknown(raw).name(), None);
        let text = CsError::Unknown(raw).to_string();
        assert!(text.contains(&raw.to_string()), "{text}");
    }
}

#[test]
fn display_names_the_c_constant_and_number() {
    for (raw, err, name) in TABLE {
        let text = err.to_string();
        assert!(text.contains(name), "{text:?} lacks {name}");
        assert!(text.contains(&raw.to_string()), "{text:?} lacks {raw}");
    }
}

#[test]
fn errno_mapping_follows_qb_to_cs_error() {
    // §5.9, with Linux errno numbers.
    let cases = [
        (9, CsError::BadHandle),
        (12, CsError::NoMemory),
        (42, CsError::TryAgain),
        (105, CsError::TryAgain),
        (110, CsError::TryAgain),
        (11, CsError::TryAgain),
        (52, CsError::FailedOperation),
        (62, CsError::Timeout),
        (22, CsError::InvalidParam),
        (16, CsError::Busy),
        (13, CsError::Access),
        (75, CsError::NameTooLong),
        (17, CsError::Exist),
        (28, CsError::NoSpace),
        (4, CsError::Interrupt),
        (2, CsError::NotExist),
        (19, CsError::NotExist),
        (38, CsError::NotSupported),
        (95, CsError::NotSupported),
        (74, CsError::MessageError),
        (90, CsError::TooBig),
        (7, CsError::TooBig),
        (111, CsError::Library), // ECONNREFUSED
        (107, CsError::Library), // ENOTCONN
        (24, CsError::Library),  // EMFILE: "anything else"
    ];
    for (errno, err) in cases {
        assert_eq!(CsError::from_errno(errno), err, "errno {errno}");
    }
}

#[test]
fn setup_errors_of_section_1_4() {
    // hdr.error in the setup response → cs_error_t, as corosync-cmapctl sees it.
    for (errno, err) in [
        (11, CsError::TryAgain),
        (38, CsError::NotSupported),
        (24, CsError::Library),
        (13, CsError::Access),
        (12, CsError::NoMemory),
    ] {
        let setup = SetupError { errno };
        assert_eq!(setup.cs_error(), err);
        let text = setup.to_string();
        assert!(text.contains(&format!("errno {errno}")), "{text}");
    }
    assert!(SetupError { errno: 13 }.to_string().contains("EACCES"));
}

#[test]
fn codec_errors_display() {
    let e = EncodeError::BufferTooSmall { required: 288, available: 10 };
    assert!(e.to_string().contains("288") && e.to_string().contains("10"));
    let d = DecodeError::Incomplete { needed: 40, have: 24 };
    assert!(d.to_string().contains("40") && d.to_string().contains("24"));
    let d = DecodeError::BadField { field: "event", offset: 296, value: 3 };
    assert!(d.to_string().contains("event") && d.to_string().contains("296"));
    let d = DecodeError::Unterminated { field: "key_name.value", offset: 24 };
    assert!(d.to_string().contains("key_name.value"));
    // The error types are usable as `dyn Error`.
    let _: &dyn core::error::Error = &CsError::Busy;
    let _: &dyn core::error::Error = &d;
    let _: &dyn core::error::Error = &e;
    let _: &dyn core::error::Error = &SetupError { errno: 13 };
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn check_is_lossless_for_every_i32(raw in any::<i32>()) {
        prop_assert_eq!(CsError::raw_of(CsError::check(raw)), raw);
        if raw != CsError::RAW_OK {
            prop_assert_eq!(CsError::from_raw(raw).to_raw(), raw);
            prop_assert!(!CsError::from_raw(raw).to_string().is_empty());
        }
    }

    #[test]
    fn from_errno_never_panics(errno in any::<i32>()) {
        let _ = CsError::from_errno(errno);
        let _ = SetupError { errno }.to_string();
    }
}
