//! Reading single members out of the archives pip downloads: wheels are zip files, sdists are
//! gzip-compressed tar files.
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use flate2::read::GzDecoder;

/// What went wrong reading an archive (the caller adds which asset and archive).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a wheel (.whl) or sdist (.tar.gz)")]
    UnknownFormat,
    #[error("{0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Copies archive member `member` into `out`. `Ok(false)` if the archive has no such member.
pub fn copy_member(
    archive: &Path,
    member: &str,
    out: &mut dyn Write,
) -> Result<bool, ArchiveError> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(BufReader::new(File::open(archive)?))?;
        let mut entry = match zip.by_name(member) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        io::copy(&mut entry, out)?;
        Ok(true)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(File::open(archive)?)));
        for entry in tar.entries()? {
            let mut entry = entry?;
            if entry.path()?.as_ref() == Path::new(member) {
                io::copy(&mut entry, out)?;
                return Ok(true);
            }
        }
        Ok(false)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_of_zip_and_tar_gz() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("p-1.0-py3-none-any.whl");
        {
            let mut z = zip::ZipWriter::new(File::create(&whl).unwrap());
            z.start_file("p/data.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"wheel member").unwrap();
            z.finish().unwrap();
        }
        let sdist = dir.path().join("p-1.0.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&sdist).unwrap(),
                flate2::Compression::fast(),
            );
            let mut t = tar::Builder::new(gz);
            let data = b"sdist member";
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, "p-1.0/data/x.txt", &data[..])
                .unwrap();
            t.into_inner().unwrap().finish().unwrap();
        }
        let mut out = Vec::new();
        assert!(copy_member(&whl, "p/data.txt", &mut out).unwrap());
        assert_eq!(out, b"wheel member");
        assert!(!copy_member(&whl, "p/none.txt", &mut Vec::new()).unwrap());
        out.clear();
        assert!(copy_member(&sdist, "p-1.0/data/x.txt", &mut out).unwrap());
        assert_eq!(out, b"sdist member");
        assert!(!copy_member(&sdist, "p-1.0/none", &mut Vec::new()).unwrap());
        let other = dir.path().join("p.rar");
        std::fs::write(&other, b"x").unwrap();
        assert!(matches!(
            copy_member(&other, "x", &mut Vec::new()),
            Err(ArchiveError::UnknownFormat)
        ));
    }
}
