//! Decoded images kept between uses, within a byte budget the job sets (`dataset.cache_mb`).
//!
//! The policy is admission only: an image is kept while the budget has room and never evicted.
//! Each epoch visits the rows in a fresh uniform permutation, so no online policy beats a hit
//! rate of budget/dataset (LRU gets the same and pays for churn); a fixed resident set also keeps
//! memory flat from the moment the budget fills. One budget serves a job's training and
//! validation sets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::data::image::RgbImage;

/// Bytes a job's caches may hold together.
#[derive(Debug)]
pub struct CacheBudget {
    limit: u64,
    used: AtomicU64,
}

impl CacheBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicU64::new(0) })
    }

    /// No limit: everything read is kept (tools that read a dataset once).
    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.limit
    }

    /// Takes `bytes` from the budget if they fit.
    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }
}

/// The images of one dataset kept in memory, by row.
#[derive(Debug)]
pub struct ImageCache {
    budget: Arc<CacheBudget>,
    images: Mutex<HashMap<u32, Arc<RgbImage>>>,
}

impl ImageCache {
    pub fn new(budget: Arc<CacheBudget>) -> Self {
        Self { budget, images: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, row: usize) -> Option<Arc<RgbImage>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner()).get(&(row as u32)).cloned()
    }

    /// Keeps `image` for `row` if the budget has room; true when it is (now) kept.
    pub fn admit(&self, row: usize, image: &Arc<RgbImage>) -> bool {
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if images.contains_key(&(row as u32)) {
            return true;
        }
        if !self.budget.reserve(image_bytes(image)) {
            return false;
        }
        images.insert(row as u32, image.clone());
        true
    }

    /// Bytes held by every cache on this cache's budget.
    pub fn budget_used(&self) -> u64 {
        self.budget.used()
    }

    pub fn len(&self) -> usize {
        self.images.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an image costs the budget: its pixels plus the map entry and allocation headers.
pub fn image_bytes(image: &RgbImage) -> u64 {
    image.pixels.len() as u64 + ENTRY_OVERHEAD
}

/// The decoded size of a `side` x `side` RGB image in the cache.
pub fn decoded_bytes(side: usize) -> u64 {
    (3 * side * side) as u64 + ENTRY_OVERHEAD
}

const ENTRY_OVERHEAD: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn image(side: usize) -> Arc<RgbImage> {
        Arc::new(RgbImage { side, pixels: vec![0; 3 * side * side] })
    }

    #[test]
    fn keeps_images_until_the_budget_is_spent_then_none() {
        let budget = CacheBudget::new(3 * decoded_bytes(4));
        let cache = ImageCache::new(budget.clone());
        assert!((0..3).all(|row| cache.admit(row, &image(4))));
        assert!(!cache.admit(3, &image(4)), "the fourth image is over the budget");
        assert_eq!(cache.len(), 3);
        assert_eq!(budget.used(), 3 * decoded_bytes(4));
        assert!(cache.get(0).is_some() && cache.get(3).is_none());
    }

    #[test]
    fn one_budget_is_shared_by_a_jobs_caches() {
        let budget = CacheBudget::new(2 * decoded_bytes(4));
        let (train, validate) = (ImageCache::new(budget.clone()), ImageCache::new(budget.clone()));
        assert!(train.admit(0, &image(4)));
        assert!(validate.admit(0, &image(4)));
        assert!(!train.admit(1, &image(4)));
        assert!(!validate.admit(1, &image(4)));
    }

    #[test]
    fn admitting_a_kept_row_again_costs_nothing() {
        let budget = CacheBudget::new(decoded_bytes(4));
        let cache = ImageCache::new(budget.clone());
        assert!(cache.admit(7, &image(4)));
        assert!(cache.admit(7, &image(4)));
        assert_eq!(budget.used(), decoded_bytes(4));
    }
}
