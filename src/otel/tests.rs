use super::*;

fn config(vars: &[(&str, &str)]) -> OtelConfig {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    OtelConfig::from_vars(&|k: &str| map.get(k).cloned())
}

#[test]
fn the_standard_variables_configure_the_exporter() {
    assert_eq!(config(&[]).traces_url, None, "off without an endpoint");
    assert_eq!(config(&[]).service_name, "boo");
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Basic%20abc%3D, x-team = a=b ,bad",
        ),
        ("OTEL_SERVICE_NAME", "ci-boo"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]);
    assert_eq!(
        c.traces_url.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(
        c.headers,
        vec![
            ("Authorization".to_string(), "Basic abc=".to_string()),
            ("x-team".to_string(), "a=b".to_string())
        ]
    );
    assert_eq!(c.service_name, "ci-boo");
    assert_eq!(c.timeout, Duration::from_millis(2500));
    // The traces endpoint is used as given; traces headers win over the general ones.
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "k=general"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "K=traces"),
    ]);
    assert_eq!(c.traces_url.as_deref(), Some("http://b:2/custom"));
    assert_eq!(c.headers, vec![("K".to_string(), "traces".to_string())]);
    assert_eq!(c.service_name, "boo");
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), off]);
        assert_eq!(c.traces_url, None);
    }
}

#[test]
fn ids_are_stable_and_well_formed() {
    let run = "0190c0de-1234-7000-8000-00000000abcd";
    assert_eq!(trace_id(run), "0190c0de12347000800000000000abcd");
    let other = trace_id("not-a-uuid");
    assert_eq!(other.len(), 32);
    assert!(other.chars().all(|c| c.is_ascii_hexdigit()));
    let a = span_id(run, "step/x/1");
    assert_eq!(a.len(), 16);
    assert_eq!(a, span_id(run, "step/x/1"));
    assert_ne!(a, span_id(run, "step/x/2"));
    assert_eq!(nanos(1_700_000_000_123), "1700000000123000000");
    assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
}
