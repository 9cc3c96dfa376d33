// The page's elements are found by id; every module reaches them through this.
export const $ = (id) => document.getElementById(id);
