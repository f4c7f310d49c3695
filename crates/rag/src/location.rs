//! Where an index lives, for commands that work on either store: an index directory, or a
//! PostgreSQL database (a `postgres://` or `postgresql://` URL). [`IndexLocation`] writes and
//! opens; [`OpenIndex`] searches and reports.

use crate::build::EmbeddingModel;
use crate::pg::{self, PgIndex, PgLocation};
use crate::search::{Hit, Mode, SearchOptions};
use crate::store::Manifest;
use crate::{BuildOptions, Index, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub enum IndexLocation {
    Dir(PathBuf),
    Postgres(Box<PgLocation>),
}

impl IndexLocation {
    /// A Postgres store when `spec` is a `postgres://` or `postgresql://` URL, else a directory.
    pub fn parse(spec: &str) -> Result<Self> {
        if pg::is_url(spec) {
            Ok(Self::Postgres(Box::new(PgLocation::parse(spec)?)))
        } else {
            Ok(Self::Dir(PathBuf::from(spec)))
        }
    }

    /// The location as messages show it (a URL without its password).
    pub fn display(&self) -> String {
        match self {
            Self::Dir(p) => p.display().to_string(),
            Self::Postgres(l) => l.redacted().to_string(),
        }
    }

    /// What [`crate::RagError::WrongModel`] names.
    fn label(&self) -> PathBuf {
        match self {
            Self::Dir(p) => p.clone(),
            Self::Postgres(l) => PathBuf::from(l.redacted()),
        }
    }

    pub fn read_manifest(&self) -> Result<Manifest> {
        match self {
            Self::Dir(p) => crate::read_manifest(p),
            Self::Postgres(l) => Ok(PgIndex::open(l)?.manifest),
        }
    }

    /// The model to add to or search this index with (see [`EmbeddingModel::for_index`]).
    pub fn model(
        &self,
        manifest: &Manifest,
        given: Option<&str>,
        progress: bool,
    ) -> Result<EmbeddingModel> {
        EmbeddingModel::for_index(&self.label(), manifest, given, progress)
    }

    /// Errors unless `spec` (resolved to `path`) is the model this index was built with.
    pub fn check_model(&self, manifest: &Manifest, spec: &str, path: &Path) -> Result<()> {
        crate::check_model(&self.label(), manifest, spec, path)
    }

    pub fn build(
        &self,
        model: &EmbeddingModel,
        docs: &Path,
        opts: BuildOptions,
    ) -> Result<Manifest> {
        match self {
            Self::Dir(p) => crate::build(model, docs, p, opts),
            Self::Postgres(l) => pg::build(model, docs, l, opts),
        }
    }

    pub fn add(&self, model: &EmbeddingModel, docs: &Path, batch: usize) -> Result<Manifest> {
        match self {
            Self::Dir(p) => crate::add(p, model, docs, batch),
            Self::Postgres(l) => pg::add(l, model, docs, batch),
        }
    }

    pub fn delete(&self, ids: &[String]) -> Result<Manifest> {
        match self {
            Self::Dir(p) => crate::delete(p, ids),
            Self::Postgres(l) => pg::delete(l, ids),
        }
    }

    pub fn open(&self) -> Result<OpenIndex> {
        match self {
            Self::Dir(p) => Ok(OpenIndex::Embedded(Box::new(Index::open(p)?))),
            Self::Postgres(l) => Ok(OpenIndex::Postgres(Box::new(PgIndex::open(l)?))),
        }
    }
}

/// An index opened for searching, in either store.
pub enum OpenIndex {
    Embedded(Box<Index>),
    Postgres(Box<PgIndex>),
}

impl OpenIndex {
    pub fn manifest(&self) -> &Manifest {
        match self {
            Self::Embedded(i) => &i.manifest,
            Self::Postgres(i) => &i.manifest,
        }
    }

    /// The `k` best chunks for `query` (see [`Index::search`] and [`PgIndex::search`]).
    pub fn search(
        &mut self,
        query: &str,
        query_vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
        opts: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        match self {
            Self::Embedded(i) => i.search_with(query, query_vector, k, mode, opts.fusion),
            Self::Postgres(i) => i.search(query, query_vector, k, mode, opts),
        }
    }

    pub fn stats(&mut self) -> Result<Value> {
        match self {
            Self::Embedded(i) => Ok(i.stats()),
            Self::Postgres(i) => i.stats(),
        }
    }
}
