//! The DisBack study at CI size.

/// The CI-sized study runs every arm on both data sets and writes its report, tables
/// and plots (without the image part, which the CLI test covers).
#[test]
fn the_quick_study_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = scorelab_experiments::disback::StudyOptions::quick();
    o.image = None;
    o.seeds = vec![0];
    o.teacher_steps = 20;
    for r in [&mut o.run, &mut o.run_16d] {
        r.steps = 4;
        r.every = 2;
        r.record_steps = 8;
        r.samples = 64;
        r.batch = 8;
    }
    let r = scorelab_experiments::disback::run_study(&o, dir.path(), None, |_| {}).unwrap();
    // 2 teachers × 2 arms, 5 controls, 2 arms in 16-D.
    assert_eq!(r.runs.len(), 4 + 5 + 2);
    assert!(r.runs.iter().all(|x| x.points.len() == 3), "steps 0, 2, 4");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("disback.json")).unwrap()).unwrap();
    assert_eq!(json["summary"].as_array().unwrap().len(), 2 * 2 + 5 + 2);
    let md = std::fs::read_to_string(dir.path().join("disback.md")).unwrap();
    assert!(md.contains("| ring8 | B | disback |"), "{md}");
    for f in [
        "ce_ring8_B_steps.svg",
        "ce_mix16_B_updates.svg",
        "score_mismatch.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
}
