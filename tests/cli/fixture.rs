//! Throwaway projects copied from the example projects under `fixtures/` (the fixtures' own
//! end-to-end runs are in fixtures.rs).

use std::path::Path;

use crate::common::{repo_root, Project};

impl Project {
    /// A copy of a directory under `fixtures/`.
    pub fn fixture(name: &str) -> Project {
        let p = Project::new(&[]);
        copy_dir(&repo_root().join("fixtures").join(name), &p.path());
        p
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else if ft.is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
