//! MusicScore page throughput, streaming from `MusicScore-14K/{train,val,test}.tar.gz`:
//! gunzip + untar alone, then + decode + resize to a training image, on one thread and
//! with the prefetching parallel `BatchStream`. Criterion's "elements" are pages, so
//! it reports pages per second.
//!
//! By default the shipped corpus (`data/musicscore`, 100 dpi pages of 827×1169); set
//! `MUSICSCORE_BENCH_ROOT` to another archive layout, e.g. one made at the dataset's
//! 200 dpi with `cargo xtask fixture musicscore --dpi 200 --out /tmp/ms200`.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use musicscore_data::corpus::{Corpus, OpenOptions};
use musicscore_data::dataset::{BatchStream, ItemOptions};
use musicscore_data::image::{DecodeOptions, Resize, decode_resized, decode_tiles};
use musicscore_data::prompt::Captioner;

fn root() -> PathBuf {
    std::env::var_os("MUSICSCORE_BENCH_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/musicscore"))
        .join("MusicScore-14K")
}

fn throughput(c: &mut Criterion) {
    let corpus = Arc::new(Corpus::open(&root(), &OpenOptions::default()).expect("corpus"));
    let pages: Vec<usize> = (0..corpus.pages.len()).collect();
    let n = pages.len() as u64;
    let dec = DecodeOptions::default();
    let mut g = c.benchmark_group("musicscore-stream");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("gunzip_untar_only", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            corpus
                .for_each_bytes(&pages, |_, v| {
                    bytes += v.len();
                    Ok(())
                })
                .expect("stream");
            bytes
        })
    });
    bench_resizes(&mut g, &corpus, &pages, &dec);
    g.bench_function("tiles256_gray_1thread", |b| {
        b.iter(|| {
            let mut tiles = 0usize;
            corpus
                .for_each_bytes(&pages, |i, v| {
                    tiles += decode_tiles(&v, &dec, 256, 1.0, &corpus.source_name(i))?.len();
                    Ok(())
                })
                .expect("stream");
            tiles
        })
    });
    let opts = ItemOptions {
        decode: dec,
        resize: Resize::FitPad {
            width: 512,
            height: 512,
        },
        captioner: Captioner::default_paper(),
    };
    g.bench_function("fit512_gray_batchstream_parallel", |b| {
        b.iter(|| {
            BatchStream::start(corpus.clone(), pages.clone(), opts.clone(), 8, 2, 0)
                .map(|b| b.expect("batch").len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// Decode + resize of every page on one thread, for each resize the export offers.
fn bench_resizes(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    corpus: &Corpus,
    pages: &[usize],
    dec: &DecodeOptions,
) {
    for (name, resize) in [
        (
            "fit512_gray_1thread",
            Resize::FitPad {
                width: 512,
                height: 512,
            },
        ),
        (
            "fit256_gray_1thread",
            Resize::FitPad {
                width: 256,
                height: 256,
            },
        ),
        (
            "crop512_gray_1thread",
            Resize::CentreCrop {
                width: 512,
                height: 512,
            },
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u64;
                corpus
                    .for_each_bytes(pages, |i, v| {
                        let r = decode_resized(&v, dec, &resize, &corpus.source_name(i))?;
                        sum += r.data[r.data.len() / 2] as u64;
                        Ok(())
                    })
                    .expect("stream");
                sum
            })
        });
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
