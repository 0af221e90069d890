//! How values read: `Debug` shows strings as text, `Display` prints as `corosync-cmapctl`.

use corowire::cmap::Value;

#[test]
fn debug_shows_strings_as_text() {
    assert_eq!(format!("{:?}", Value::String(b"x")), r#"String("x")"#);
    assert_eq!(format!("{:?}", Value::String(b"it's \"q\"\n")), r#"String("it's \"q\"\n")"#);
    // Bytes that are not UTF-8 are escaped, so nothing is lost.
    assert_eq!(format!("{:?}", Value::String(b"a\xffb\xc3")), r#"String("a\xffb\xc3")"#);
    assert_eq!(format!("{:?}", Value::String("é".as_bytes())), r#"String("é")"#);
    assert_eq!(format!("{:?}", Value::Binary(&[1, 2])), "Binary([1, 2])");
    assert_eq!(format!("{:?}", Value::UInt32(7)), "UInt32(7)");
    assert_eq!(format!("{:#?}", Value::Int8(-1)), "Int8(\n    -1,\n)");
}

#[test]
fn display_prints_like_cmapctl() {
    assert_eq!(Value::Int8(-8).to_string(), "-8");
    assert_eq!(Value::UInt64(u64::MAX).to_string(), "18446744073709551615");
    assert_eq!(Value::Int64(i64::MIN).to_string(), "-9223372036854775808");
    assert_eq!(Value::Float(2.71).to_string(), "2.710000");
    assert_eq!(Value::Double(0.0078125).to_string(), "0.007812");
    assert_eq!(Value::Double(0.0234375).to_string(), "0.023438");
    assert_eq!(Value::Double(-0.0).to_string(), "-0.000000");
    assert_eq!(Value::Double(1e20).to_string(), "100000000000000000000.000000");
    assert_eq!(Value::Double(f64::NAN).to_string(), "nan");
    assert_eq!(Value::Double(-f64::NAN).to_string(), "-nan");
    assert_eq!(Value::Float(f32::NEG_INFINITY).to_string(), "-inf");
    assert_eq!(Value::String(b"corowire").to_string(), "corowire");
    // `%s` stops at the first NUL; bytes that are not UTF-8 become U+FFFD.
    assert_eq!(Value::String(b"ab\0cd").to_string(), "ab");
    assert_eq!(Value::String(b"a\xffb").to_string(), "a\u{fffd}b");
    assert_eq!(Value::Binary(b"a\\\x01\x7f\x80\xff").to_string(), r"a\\\x01\x7F\x80\xFF");
}

#[cfg(feature = "alloc")]
#[test]
fn owned_value_round_trips_and_reads_the_same() {
    use corowire::cmap::ValueType;
    use corowire::value::OwnedValue;
    let values = [
        Value::Int8(-1),
        Value::UInt8(1),
        Value::Int16(-2),
        Value::UInt16(2),
        Value::Int32(-3),
        Value::UInt32(3),
        Value::Int64(-4),
        Value::UInt64(4),
        Value::Float(1.5),
        Value::Double(-2.25),
        Value::String(b"s\xff"),
        Value::Binary(b"\0b"),
    ];
    for (v, ty) in values.into_iter().zip(ValueType::ALL) {
        let owned = OwnedValue::from(v);
        assert_eq!(owned.as_value(), v);
        assert_eq!(owned.value_type(), ty);
        assert_eq!(format!("{owned:?}"), format!("{v:?}"));
        assert_eq!(owned.to_string(), v.to_string());
    }
    assert_eq!(OwnedValue::String(b"ok".to_vec()).as_str(), Some("ok"));
    assert_eq!(OwnedValue::String(b"\xff".to_vec()).as_str(), None);
    assert_eq!(OwnedValue::Binary(b"ok".to_vec()).as_str(), None);
}
