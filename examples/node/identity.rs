//! The node's Ed25519 identity, kept in the data directory so the node has
//! the same PeerId (and so the same owned keys) after a restart.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use libp2p::identity::Keypair;

use crate::Error;

/// File name of the identity inside the data directory.
pub const IDENTITY_FILE: &str = "identity.key";

/// Loads `dir/identity.key`, or creates the directory and a new Ed25519
/// keypair there on first start.
pub fn load_or_create(dir: &Path) -> Result<Keypair, Error> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(IDENTITY_FILE);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map_err(|e| format!("{}: {e}", path.display()).into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            write_private(&path, &keypair.to_protobuf_encoding()?)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(keypair)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
    }
}

/// Records are signed with Ed25519, so any other key type is refused.
fn decode(bytes: &[u8]) -> Result<Keypair, Error> {
    let keypair = Keypair::from_protobuf_encoding(bytes)?;
    if keypair.clone().try_into_ed25519().is_err() {
        return Err("not an Ed25519 keypair".into());
    }
    Ok(keypair)
}

/// Writes a new file readable by its owner only. `create_new`: two nodes
/// started on one directory at once must not overwrite each other's key.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
