//! Training data: a burn `Dataset` of page images and prompts, and a streaming batch
//! reader for archives.
//!
//! [`ScoreDataset`] gives random access (archive pages go through the index) and
//! decodes the items of `get_many` in parallel on rayon's pool. [`BatchStream`] reads
//! archives in order on one thread, decodes each batch in parallel, and keeps up to
//! `prefetch` batches ready in a bounded channel, so the training loop takes a batch
//! while the next ones are being read and decoded (throughput in
//! `docs/musicscore-data.md`, bench `musicscore`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataset::Dataset;
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;
use score_core::burn;

use crate::corpus::Corpus;
use crate::error::{MusicScoreError, Result};
use crate::image::{DecodeOptions, Raster, Resize, decode_resized, decode_tiles};
use crate::prompt::Captioner;

/// One training item.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreItem {
    /// Pixels `[c, h, w]` in [−1, 1] (white = 1), row-major.
    pub pixels: Vec<f32>,
    /// `[c, h, w]`.
    pub shape: [usize; 3],
    /// The prompt (empty when dropped for classifier-free guidance).
    pub prompt: String,
    /// Index of the page in the corpus.
    pub page: usize,
    /// Tile number within the page (0 unless tiling).
    pub tile: usize,
}

/// How pages become items.
#[derive(Debug, Clone)]
pub struct ItemOptions {
    /// Decoding (colour, pixel limit).
    pub decode: DecodeOptions,
    /// Resizing; [`Resize::Tiles`] makes one item per tile.
    pub resize: Resize,
    /// Prompts.
    pub captioner: Captioner,
}

fn to_item(r: &Raster, prompt: String, page: usize, tile: usize) -> ScoreItem {
    ScoreItem {
        pixels: r.to_chw_f32().into_iter().map(|v| 2.0 * v - 1.0).collect(),
        shape: [r.channels, r.height, r.width],
        prompt,
        page,
        tile,
    }
}

/// Decode page bytes to its items (one, or one per tile).
pub fn page_items(
    corpus: &Corpus,
    page: usize,
    bytes: &[u8],
    opts: &ItemOptions,
    index: u64,
    epoch: u64,
) -> Result<Vec<ScoreItem>> {
    let src = corpus.source_name(page);
    let fields = corpus.fields(page);
    let name = corpus.pages[page].name;
    let prompt = |k: u64| {
        opts.captioner
            .caption(&fields, Some(&name), index + k, epoch)
    };
    match opts.resize {
        Resize::Tiles { size, scale } => Ok(decode_tiles(bytes, &opts.decode, size, scale, &src)?
            .iter()
            .enumerate()
            .map(|(k, t)| to_item(t, prompt(k as u64), page, k))
            .collect()),
        ref r => Ok(vec![to_item(
            &decode_resized(bytes, &opts.decode, r, &src)?,
            prompt(0),
            page,
            0,
        )]),
    }
}

/// A burn `Dataset` over selected pages (or their staff-system tiles).
pub struct ScoreDataset {
    corpus: Arc<Corpus>,
    items: Vec<(usize, usize)>,
    opts: ItemOptions,
    epoch: AtomicU64,
}

impl ScoreDataset {
    /// Items of the pages `pages`. With [`Resize::Tiles`], every page is decoded once
    /// (in parallel) to count its tiles; pages that fail to decode are an error naming
    /// the file (open the corpus with facts and skip to leave them out beforehand).
    pub fn new(corpus: Arc<Corpus>, pages: &[usize], opts: ItemOptions) -> Result<Self> {
        for &p in pages {
            corpus.page(p)?;
        }
        let items = match opts.resize {
            Resize::Tiles { .. } => {
                let counts: Vec<Result<usize>> = pages
                    .par_iter()
                    .map(|&p| {
                        let bytes = corpus.read(p)?;
                        Ok(page_items(&corpus, p, &bytes, &opts, 0, 0)?.len())
                    })
                    .collect();
                let mut items = Vec::new();
                for (&p, n) in pages.iter().zip(counts) {
                    items.extend((0..n?).map(|k| (p, k)));
                }
                items
            }
            _ => pages.iter().map(|&p| (p, 0)).collect(),
        };
        Ok(ScoreDataset {
            corpus,
            items,
            opts,
            epoch: AtomicU64::new(0),
        })
    }

    /// Set the epoch (caption dropout draws differ per epoch).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// `(page, tile)` of item `i`.
    pub fn item_ref(&self, i: usize) -> Option<(usize, usize)> {
        self.items.get(i).copied()
    }

    /// A batch as a tensor `[n, c, h, w]` in [−1, 1] and its prompts, decoded in
    /// parallel. Every item must have the same shape (true for fit-pad, centre crop and
    /// tiles).
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor<4>, Vec<String>)> {
        let items = self.get_many(indices.to_vec())?;
        stack(items, device)
    }
}

/// Stack items into a batch tensor and a prompt list.
pub fn stack(items: Vec<ScoreItem>, device: &Device) -> Result<(Tensor<4>, Vec<String>)> {
    let first = items
        .first()
        .ok_or_else(|| MusicScoreError::Invalid("empty batch".into()))?
        .shape;
    if let Some(bad) = items.iter().find(|it| it.shape != first) {
        return Err(MusicScoreError::Invalid(format!(
            "items of different shapes in one batch: {first:?} and {:?}",
            bad.shape
        )));
    }
    let n = items.len();
    let mut data = Vec::with_capacity(n * first.iter().product::<usize>());
    let mut prompts = Vec::with_capacity(n);
    for it in items {
        data.extend_from_slice(&it.pixels);
        prompts.push(it.prompt);
    }
    let t = Tensor::<1>::from_floats(data.as_slice(), device)
        .reshape([n, first[0], first[1], first[2]]);
    Ok((t, prompts))
}

impl Dataset<ScoreItem, MusicScoreError> for ScoreDataset {
    fn get(&self, index: usize) -> Result<ScoreItem> {
        let &(page, tile) = self.items.get(index).ok_or_else(|| {
            MusicScoreError::Invalid(format!("item {index} of {}", self.items.len()))
        })?;
        let bytes = self.corpus.read(page)?;
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut items = page_items(
            &self.corpus,
            page,
            &bytes,
            &self.opts,
            (index - tile) as u64,
            epoch,
        )?;
        if tile >= items.len() {
            return Err(MusicScoreError::Image {
                source_name: self.corpus.source_name(page),
                message: format!("tile {tile} of {}", items.len()),
            });
        }
        Ok(items.swap_remove(tile))
    }

    fn get_many(&self, indexes: Vec<usize>) -> Result<Vec<ScoreItem>> {
        indexes.par_iter().map(|&i| self.get(i)).collect()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Batches read in storage order (each archive streamed once), decoded in parallel,
/// with `prefetch` batches buffered ahead. Iterate to get `Result<Vec<ScoreItem>>`;
/// a decoding error ends the stream with that error.
pub struct BatchStream {
    rx: Receiver<Result<Vec<ScoreItem>>>,
    handle: Option<JoinHandle<()>>,
}

impl BatchStream {
    /// Start reading `pages` (in storage order) in a background thread.
    pub fn start(
        corpus: Arc<Corpus>,
        pages: Vec<usize>,
        opts: ItemOptions,
        batch_size: usize,
        prefetch: usize,
        epoch: u64,
    ) -> BatchStream {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let handle = std::thread::spawn(move || {
            let batch_size = batch_size.max(1);
            let mut pending: Vec<(usize, Vec<u8>)> = Vec::with_capacity(batch_size);
            let mut produced = 0u64;
            let decode = |pending: &mut Vec<(usize, Vec<u8>)>,
                          produced: &mut u64|
             -> Result<Vec<ScoreItem>> {
                let base = *produced;
                let out: Result<Vec<Vec<ScoreItem>>> = pending
                    .par_iter()
                    .enumerate()
                    .map(|(k, (p, b))| {
                        page_items(&corpus, *p, b, &opts, base + k as u64 * 1000, epoch)
                    })
                    .collect();
                *produced += pending.len() as u64;
                pending.clear();
                Ok(out?.into_iter().flatten().collect())
            };
            let res = corpus.for_each_bytes(&pages, |i, bytes| {
                pending.push((i, bytes));
                if pending.len() == batch_size {
                    let batch = decode(&mut pending, &mut produced)?;
                    if tx.send(Ok(batch)).is_err() {
                        return Err(MusicScoreError::Cancelled);
                    }
                }
                Ok(())
            });
            let last = res.and_then(|_| {
                if pending.is_empty() {
                    Ok(None)
                } else {
                    decode(&mut pending, &mut produced).map(Some)
                }
            });
            match last {
                Ok(Some(b)) => {
                    let _ = tx.send(Ok(b));
                }
                Ok(None) => {}
                Err(MusicScoreError::Cancelled) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        BatchStream {
            rx,
            handle: Some(handle),
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Vec<ScoreItem>>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(b) => Some(b),
            Err(_) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                None
            }
        }
    }
}
