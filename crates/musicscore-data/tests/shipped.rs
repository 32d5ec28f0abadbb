//! Tests on the corpus shipped in `data/musicscore` (rendered by
//! `cargo xtask fixture musicscore` from public-domain music21 encodings).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::tensor::Device;
use musicscore_data::burn;
use musicscore_data::corpus::{
    Corpus, LayoutKind, OnError, OpenOptions, PageSource, Split, find_layouts,
};
use musicscore_data::dataset::{BatchStream, ItemOptions, ScoreDataset};
use musicscore_data::export::export_imagefolder;
use musicscore_data::image::{ColorMode, DecodeOptions, Resize, decode, staff_systems};
use musicscore_data::metadata::MetadataShape;
use musicscore_data::prompt::{Captioner, Template};
use musicscore_data::select::{Filter, GroupBy, Stats, group_split};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/musicscore")
}

fn open(name: &str, facts: bool) -> Corpus {
    let opts = OpenOptions {
        on_error: OnError::Fail,
        facts,
        checkpoint_every: 64 << 10,
        index_cache: None,
        ..Default::default()
    };
    Corpus::open(&data().join(name), &opts).unwrap()
}

#[test]
fn both_layouts_open_and_join_completely() {
    let layouts = find_layouts(&data()).unwrap();
    let names: Vec<String> = layouts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["MisicScore-400", "MusicScore-14K"]);

    let a = open("MisicScore-400", true);
    assert_eq!(a.kind, LayoutKind::Folders);
    assert_eq!(a.pages.len(), 22);
    let m = a.metadata.as_ref().unwrap();
    assert_eq!(
        m.shape,
        MetadataShape::Keyed {
            page_keys: 22,
            file_keys: 0,
            other_keys: 0
        }
    );
    assert!(a.report.unmatched_pages.is_empty() && a.report.unmatched_records.is_empty());

    let b = open("MusicScore-14K", true);
    assert_eq!(b.kind, LayoutKind::Archives);
    assert_eq!(b.pages.len(), 31);
    assert_eq!(b.metadata.as_ref().unwrap().records.len(), 18);
    assert!(b.report.unmatched_pages.is_empty() && b.report.unmatched_records.is_empty());
    // Every archive entry is a page, plus one folder entry per archive.
    assert_eq!(b.report.other_archive_entries, 3);

    // Fields: IMSLP "Last, First" → "First Last", key normalised.
    let joplin = a
        .pages
        .iter()
        .position(|p| p.name.file_id == 990101)
        .unwrap();
    let f = a.fields(joplin);
    assert_eq!(f.composer.as_deref(), Some("Scott Joplin"));
    assert_eq!(f.key.as_deref(), Some("A-flat major"));
    assert_eq!(f.year, Some(1899));
    assert_eq!(
        Template::default().render(&f, None),
        "a music score, instrumentation is piano, key is A-flat major"
    );
    // Page geometry: A4 and US Letter at 100 dpi.
    let sizes: HashSet<(usize, usize)> = a
        .pages
        .iter()
        .map(|p| {
            let f = p.facts.unwrap();
            (f.width, f.height)
        })
        .collect();
    assert_eq!(sizes, HashSet::from([(827, 1169), (850, 1100)]));
    // Engraved pages carry ink; none is blank or duplicated.
    let s = Stats::compute(&b, &(0..b.pages.len()).collect::<Vec<_>>());
    assert_eq!((s.blank, s.duplicates), (Some(0), Some(0)));
    let [lo, _, hi] = s.ink.unwrap();
    assert!(lo > 0.005 && hi < 0.2, "{lo} {hi}");
}

#[test]
fn published_splits_never_share_a_file_and_resplits_keep_groups() {
    for name in ["MisicScore-400", "MusicScore-14K"] {
        let c = open(name, false);
        let mut split_of: HashMap<u64, Split> = HashMap::new();
        for p in &c.pages {
            let s = *split_of.entry(p.name.file_id).or_insert(p.split);
            assert_eq!(s, p.split, "{name}: IMSLP{} in two splits", p.name.file_id);
        }
        let all: Vec<usize> = (0..c.pages.len()).collect();
        for by in [GroupBy::File, GroupBy::Work] {
            let parts = group_split(&c, &all, [0.7, 0.15, 0.15], 7, by).unwrap();
            assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), all.len());
            assert!(
                parts.iter().all(|p| !p.is_empty()),
                "{name} {by:?}: an empty split"
            );
            let mut group_split_of: HashMap<String, usize> = HashMap::new();
            for (k, part) in parts.iter().enumerate() {
                for &i in part {
                    let f = c.fields(i);
                    let g = match by {
                        GroupBy::File => c.pages[i].name.file_id.to_string(),
                        GroupBy::Work => format!("{:?}{:?}", f.composer, f.title),
                    };
                    assert_eq!(
                        *group_split_of.entry(g).or_insert(k),
                        k,
                        "{name}: group in two splits"
                    );
                }
            }
            // Same seed, same split; another seed, another split.
            assert_eq!(
                parts,
                group_split(&c, &all, [0.7, 0.15, 0.15], 7, by).unwrap()
            );
        }
        let a = group_split(&c, &all, [0.7, 0.15, 0.15], 1, GroupBy::File).unwrap();
        let b = group_split(&c, &all, [0.7, 0.15, 0.15], 2, GroupBy::File).unwrap();
        assert_ne!(a, b);
        assert!(group_split(&c, &all, [0.7, 0.2, 0.2], 1, GroupBy::File).is_err());
    }
}

#[test]
fn filters_select_what_they_say() {
    let c = open("MusicScore-14K", true);
    let keep = |f: Filter| f.apply(&c).unwrap();
    let violin = keep(Filter {
        instrument: Some("violin".into()),
        ..Default::default()
    });
    assert!(!violin.is_empty());
    assert!(violin.iter().all(|&i| {
        c.fields(i)
            .instrumentation
            .iter()
            .any(|x| x.contains("violin"))
    }));
    let minor = keep(Filter {
        key: Some("minor".into()),
        ..Default::default()
    });
    assert!(
        minor
            .iter()
            .all(|&i| c.fields(i).key.unwrap().ends_with("minor"))
    );
    let bach = keep(Filter {
        composer: Some("johann sebastian".into()),
        ..Default::default()
    });
    assert_eq!(bach.len(), 4);
    let first = keep(Filter {
        pages: Some((1, 1)),
        ..Default::default()
    });
    assert_eq!(first.len(), 18, "one first page per file");
    let val = keep(Filter {
        splits: vec![Split::Val],
        ..Default::default()
    });
    assert!(val.iter().all(|&i| c.pages[i].split == Split::Val));
    assert_eq!(
        keep(Filter {
            ink: Some((0.5, 1.0)),
            ..Default::default()
        })
        .len(),
        0
    );
    assert_eq!(
        keep(Filter {
            drop_blank: true,
            drop_duplicates: true,
            ..Default::default()
        })
        .len(),
        31
    );
    assert_eq!(
        keep(Filter {
            min_size: Some((1000, 1000)),
            ..Default::default()
        })
        .len(),
        0
    );
    // Size filters need facts.
    let nofacts = open("MusicScore-14K", false);
    assert!(
        Filter {
            drop_blank: true,
            ..Default::default()
        }
        .apply(&nofacts)
        .is_err()
    );
}

#[test]
fn archive_random_access_matches_the_stream() {
    let c = open("MusicScore-14K", false);
    assert!(
        c.archives.iter().any(|a| a.checkpoints() > 4),
        "checkpoints exercised"
    );
    let all: Vec<usize> = (0..c.pages.len()).collect();
    let mut streamed = HashMap::new();
    c.for_each_bytes(&all, |i, b| {
        streamed.insert(i, b);
        Ok(())
    })
    .unwrap();
    assert_eq!(streamed.len(), c.pages.len());
    for i in (0..c.pages.len()).rev() {
        assert!(matches!(c.pages[i].source, PageSource::Archive { .. }));
        assert_eq!(c.read(i).unwrap(), streamed[&i], "{}", c.pages[i].file_name);
    }
}

#[test]
fn staff_systems_are_found_on_engraved_pages() {
    // Chorales (BWV 1, 10, 104 here) are engraved as 4-staff systems, three or more to a
    // page; Beethoven's quartet page 1 has three 4-staff systems.
    let c = open("MusicScore-14K", false);
    let opts = DecodeOptions::default();
    for (file, at_least) in [
        ("IMSLP990201_1.jpg", 3),
        ("IMSLP990208_1.jpg", 3),
        ("IMSLP990205_1.jpg", 3),
    ] {
        let i = c.pages.iter().position(|p| p.file_name == file).unwrap();
        let page = decode(&c.read(i).unwrap(), &opts, None, file).unwrap();
        let sys = staff_systems(&page);
        assert!(sys.len() >= at_least, "{file}: {sys:?}");
        assert!(
            sys.windows(2).all(|w| w[0].1 <= w[1].0),
            "{file}: overlapping {sys:?}"
        );
    }
}

#[test]
fn dataset_items_batches_and_stream() {
    let c = Arc::new(open("MisicScore-400", false));
    let pages: Vec<usize> = (0..c.pages.len()).collect();
    let opts = ItemOptions {
        decode: DecodeOptions {
            color: ColorMode::Gray,
            ..Default::default()
        },
        resize: Resize::FitPad {
            width: 48,
            height: 64,
        },
        captioner: Captioner {
            template: Template::default(),
            dropout: 0.5,
            seed: 1,
        },
    };
    let ds = ScoreDataset::new(c.clone(), &pages, opts.clone()).unwrap();
    assert_eq!(ds.len(), 22);
    let it = ds.get(0).unwrap();
    assert_eq!(it.shape, [1, 64, 48]);
    assert!(it.pixels.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Fit-and-pad of an 827×1169 page into 48×64: the page is 45×64, so the first
    // column is padding (white = 1). The page keeps its ink: every shipped page has an
    // ink ratio ≥ 0.03 (stats), 45/48 of the item is page, so the mean pixel in [−1, 1]
    // is at most 1 − 2 · 0.03 · 45/48 = 0.944; 0.96 leaves room for rounding.
    assert!((0..64).all(|y| it.pixels[y * 48] == 1.0));
    let mean = it.pixels.iter().sum::<f32>() / it.pixels.len() as f32;
    assert!(mean < 0.96, "{mean}");
    let (x, prompts) = ds.batch(&[0, 1, 2, 3], &Device::default()).unwrap();
    assert_eq!(x.dims(), [4, 1, 64, 48]);
    assert_eq!(prompts.len(), 4);
    // Dropout draws are per epoch.
    let p0: Vec<String> = (0..22).map(|i| ds.get(i).unwrap().prompt).collect();
    ds.set_epoch(1);
    let p1: Vec<String> = (0..22).map(|i| ds.get(i).unwrap().prompt).collect();
    assert_ne!(p0, p1);
    assert!(p0.iter().any(String::is_empty) && p0.iter().any(|p| !p.is_empty()));
    assert!(ds.get(22).is_err());

    // Tiles.
    let tiles = ScoreDataset::new(
        c.clone(),
        &pages[..4],
        ItemOptions {
            resize: Resize::Tiles {
                size: 128,
                scale: 0.5,
            },
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(tiles.len() >= 8, "{}", tiles.len());
    assert_eq!(tiles.get(tiles.len() - 1).unwrap().shape, [1, 128, 128]);

    // Streaming batches cover every page once.
    let c14 = Arc::new(open("MusicScore-14K", false));
    let all: Vec<usize> = (0..c14.pages.len()).collect();
    let mut seen = Vec::new();
    for b in BatchStream::start(c14.clone(), all.clone(), opts, 8, 2, 0) {
        let b = b.unwrap();
        assert!(b.len() <= 8);
        seen.extend(b.iter().map(|it| it.page));
    }
    seen.sort();
    assert_eq!(seen, all);
}

#[test]
fn imagefolder_export_round_trips() {
    let c = open("MisicScore-400", false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    // Two pages outside the published splits: they go to train/, a split name Hugging
    // Face recognises ("unsplit" is not one).
    let assign: Vec<(usize, Split)> = (0..c.pages.len())
        .map(|i| {
            (
                i,
                if i < 2 {
                    Split::Unsplit
                } else {
                    c.pages[i].split
                },
            )
        })
        .collect();
    // Caption dropout is training's (drawn per epoch): even at dropout 1 the exported
    // text is the full prompt.
    let cap = Captioner::new(Template::default());
    let dropping = Captioner {
        dropout: 1.0,
        ..cap.clone()
    };
    let s = export_imagefolder(&c, &assign, &out, &dropping, None, false).unwrap();
    assert_eq!(s.images.values().sum::<usize>(), 22);
    assert!(!out.join("unsplit").exists());
    assert!(
        s.images
            .keys()
            .all(|k| ["train", "val", "test"].contains(&k.as_str()))
    );
    let mut lines = 0;
    for split in ["train", "val", "test"] {
        let meta = std::fs::read_to_string(out.join(split).join("metadata.jsonl")).unwrap();
        for line in meta.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let f = v["file_name"].as_str().unwrap();
            let i = c.pages.iter().position(|p| p.file_name == f).unwrap();
            // Files are copied byte for byte; the text is the page's prompt.
            assert_eq!(
                std::fs::read(out.join(split).join(f)).unwrap(),
                c.read(i).unwrap()
            );
            assert_eq!(
                v["text"],
                cap.caption(&c.fields(i), Some(&c.pages[i].name), 0, 0)
            );
            lines += 1;
        }
    }
    assert_eq!(lines, 22);
    // A second export into the non-empty folder is refused; with overwrite it works.
    assert!(export_imagefolder(&c, &assign, &out, &cap, None, false).is_err());
    let resized = export_imagefolder(
        &c,
        &assign[..3],
        &out,
        &cap,
        Some((
            Resize::CentreCrop {
                width: 32,
                height: 32,
            },
            DecodeOptions::default(),
        )),
        true,
    )
    .unwrap();
    assert_eq!(resized.images.values().sum::<usize>(), 3);
    assert!(out.join("train").join("IMSLP990101_1.png").is_file());
}
