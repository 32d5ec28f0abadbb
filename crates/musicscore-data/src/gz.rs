//! A gzip reader that can leave resume points behind.
//!
//! `{train,val,test}.tar.gz` of MusicScore-200k is 46 GB: it is read as a stream, never
//! unpacked. [`GzReader`] decodes gzip (one or several members) with `miniz_oxide`,
//! checks each member's CRC-32 and length, and reports a truncated or corrupt stream as
//! an error with the compressed byte offset. With [`GzReader::with_checkpoints`] it also
//! keeps a copy of the inflater every `every` bytes of output: the 32 KiB window plus the
//! decoder's tables, about 45 KB each. Resuming from the nearest checkpoint before a
//! byte offset ([`GzReader::resume`]) gives random access to the uncompressed stream at
//! the cost of decoding at most `every` bytes, which is what [`crate::archive`]'s index
//! uses.

use std::io::{self, Read};

use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// A saved inflater state at a position of the stream.
#[derive(Clone)]
pub struct Checkpoint {
    /// Offset in the uncompressed stream.
    pub out_pos: u64,
    /// Offset in the compressed file of the next byte to feed.
    pub in_pos: u64,
    state: Box<InflateState>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("out_pos", &self.out_pos)
            .field("in_pos", &self.in_pos)
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Header,
    Body,
    Trailer,
    Done,
}

const BUF: usize = 64 * 1024;

/// Streaming gzip decoder over any reader; see the module docs.
pub struct GzReader<R> {
    inner: R,
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes read from `inner` so far (plus the starting offset when resumed).
    in_read: u64,
    out_pos: u64,
    member_out: u64,
    members: u32,
    state: Box<InflateState>,
    crc: flate2::Crc,
    verify: bool,
    phase: Phase,
    every: u64,
    next_cp: u64,
    checkpoints: Vec<Checkpoint>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> GzReader<R> {
    /// Decode the gzip stream read from `inner`, from its start.
    pub fn new(inner: R) -> Self {
        GzReader {
            inner,
            inbuf: vec![0; BUF],
            start: 0,
            end: 0,
            eof: false,
            in_read: 0,
            out_pos: 0,
            member_out: 0,
            members: 0,
            state: InflateState::new_boxed(DataFormat::Raw),
            crc: flate2::Crc::new(),
            verify: true,
            phase: Phase::Header,
            every: 0,
            next_cp: u64::MAX,
            checkpoints: Vec::new(),
        }
    }

    /// Keep a checkpoint every `every` bytes of output (0 keeps none).
    pub fn with_checkpoints(mut self, every: u64) -> Self {
        self.every = every;
        self.next_cp = if every == 0 { u64::MAX } else { every };
        self
    }

    /// Continue decoding at a checkpoint; `inner` must be positioned at
    /// `cp.in_pos` of the same file. CRCs are not checked from here on (the member's
    /// start was not seen).
    pub fn resume(inner: R, cp: &Checkpoint) -> Self {
        let mut r = GzReader::new(inner);
        r.in_read = cp.in_pos;
        r.out_pos = cp.out_pos;
        r.state = cp.state.clone();
        r.verify = false;
        r.phase = Phase::Body;
        r.members = 1;
        r
    }

    /// Uncompressed bytes produced so far.
    pub fn position(&self) -> u64 {
        self.out_pos
    }

    /// Compressed bytes consumed so far.
    pub fn compressed_position(&self) -> u64 {
        self.in_read - (self.end - self.start) as u64
    }

    /// The checkpoints kept so far.
    pub fn take_checkpoints(&mut self) -> Vec<Checkpoint> {
        std::mem::take(&mut self.checkpoints)
    }

    /// Read more input, keeping unconsumed bytes; returns how many bytes came in.
    fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.start > 0 {
            self.inbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.inbuf.len() {
            self.inbuf.resize(self.inbuf.len() * 2, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.inbuf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        self.in_read += n as u64;
        Ok(n)
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.start == self.end && self.fill()? == 0 {
            return Ok(None);
        }
        let b = self.inbuf[self.start];
        self.start += 1;
        Ok(Some(b))
    }

    fn need(&mut self, what: &str) -> io::Result<u8> {
        let at = self.compressed_position();
        self.byte()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("truncated gzip {what} at compressed offset {at}"),
            )
        })
    }

    fn header(&mut self) -> io::Result<()> {
        let at = self.compressed_position();
        let Some(id1) = self.byte()? else {
            if self.members == 0 {
                return Err(bad("empty file: no gzip header".into()));
            }
            self.phase = Phase::Done;
            return Ok(());
        };
        if id1 != 0x1f {
            if self.members == 0 {
                return Err(bad("not a gzip file (bad magic bytes)".into()));
            }
            // Trailing bytes after the last member (padding): ignored, as gzip does.
            self.phase = Phase::Done;
            return Ok(());
        }
        let id2 = self.need("header")?;
        let cm = self.need("header")?;
        if id2 != 0x8b || cm != 8 {
            return Err(bad(format!(
                "bad gzip member header at compressed offset {at}"
            )));
        }
        let flg = self.need("header")?;
        if flg & 0xe0 != 0 {
            return Err(bad(format!(
                "reserved gzip flags set at compressed offset {at}"
            )));
        }
        for _ in 0..6 {
            self.need("header")?; // mtime, xfl, os
        }
        if flg & 0x04 != 0 {
            let lo = self.need("header")? as usize;
            let hi = self.need("header")? as usize;
            for _ in 0..(lo | hi << 8) {
                self.need("extra field")?;
            }
        }
        for bit in [0x08u8, 0x10] {
            if flg & bit != 0 {
                while self.need("file name")? != 0 {}
            }
        }
        if flg & 0x02 != 0 {
            self.need("header CRC")?;
            self.need("header CRC")?;
        }
        self.members += 1;
        self.member_out = 0;
        self.crc = flate2::Crc::new();
        *self.state = InflateState::new(DataFormat::Raw);
        self.phase = Phase::Body;
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        for b in &mut t {
            *b = self.need("trailer")?;
        }
        if self.verify {
            let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
            let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
            if crc != self.crc.sum() || len != self.member_out as u32 {
                return Err(bad(format!(
                    "gzip member {} fails its CRC-32/length check (corrupt data)",
                    self.members
                )));
            }
        }
        self.verify = true;
        self.phase = Phase::Header;
        Ok(())
    }

    fn checkpoint(&mut self) {
        if self.out_pos >= self.next_cp {
            self.checkpoints.push(Checkpoint {
                out_pos: self.out_pos,
                in_pos: self.compressed_position(),
                state: self.state.clone(),
            });
            self.next_cp = self.out_pos + self.every;
        }
    }
}

impl<R: Read> Read for GzReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.phase {
                Phase::Done => return Ok(0),
                Phase::Header => self.header()?,
                Phase::Trailer => self.trailer()?,
                Phase::Body => {
                    self.checkpoint();
                    if self.start == self.end {
                        self.fill()?;
                    }
                    let res = inflate(
                        &mut self.state,
                        &self.inbuf[self.start..self.end],
                        buf,
                        MZFlush::None,
                    );
                    self.start += res.bytes_consumed;
                    let n = res.bytes_written;
                    self.out_pos += n as u64;
                    self.member_out += n as u64;
                    if self.verify {
                        self.crc.update(&buf[..n]);
                    }
                    let progress = n > 0 || res.bytes_consumed > 0;
                    match res.status {
                        Ok(MZStatus::StreamEnd) => self.phase = Phase::Trailer,
                        Ok(_) | Err(MZError::Buf) => {
                            if !progress && self.fill()? == 0 {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    format!(
                                        "truncated gzip stream at compressed offset {} \
                                         (uncompressed offset {})",
                                        self.compressed_position(),
                                        self.out_pos
                                    ),
                                ));
                            }
                        }
                        Err(e) => {
                            return Err(bad(format!(
                                "corrupt deflate data ({e:?}) near compressed offset {}",
                                self.compressed_position()
                            )));
                        }
                    }
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Seek, SeekFrom, Write};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn pseudo(n: usize) -> Vec<u8> {
        let mut x = 12345u64;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 3 == 0 {
                    (x >> 59) as u8
                } else {
                    b"abcab"[i % 5]
                }
            })
            .collect()
    }

    #[test]
    fn decodes_members_and_resumes_at_checkpoints() {
        let data = pseudo(3_000_000);
        let mut file = gz(&data[..1_000_000]);
        file.extend(gz(&data[1_000_000..]));
        let mut r = GzReader::new(Cursor::new(&file)).with_checkpoints(200_000);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let cps = r.take_checkpoints();
        assert!(cps.len() >= 10, "{}", cps.len());
        for cp in cps.iter().step_by(3) {
            let mut c = Cursor::new(&file);
            c.seek(SeekFrom::Start(cp.in_pos)).unwrap();
            let mut rr = GzReader::resume(c, cp);
            let mut got = vec![0u8; 5000];
            rr.read_exact(&mut got).unwrap();
            let at = cp.out_pos as usize;
            assert_eq!(got, &data[at..at + 5000], "checkpoint at {at}");
        }
    }

    #[test]
    fn truncation_and_corruption_are_errors() {
        let data = pseudo(200_000);
        let file = gz(&data);
        for cut in [5, 11, file.len() / 2, file.len() - 4] {
            let mut out = Vec::new();
            let e = GzReader::new(Cursor::new(&file[..cut]))
                .read_to_end(&mut out)
                .unwrap_err();
            assert!(e.to_string().contains("truncated"), "{cut}: {e}");
        }
        let mut flipped = file.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        let mut out = Vec::new();
        let e = GzReader::new(Cursor::new(&flipped))
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let e = GzReader::new(Cursor::new(b"PK\x03\x04"))
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("not a gzip"), "{e}");
    }
}
