// `user_id` and `userId` would both name their handle `UserIdCache`, `get_user` and
// `get_User` both `GetUserCache`: one clear error each, at both functions.
#![allow(non_snake_case)]

#[steadycache::cached(ttl = "1m")]
fn user_id(x: u32) -> u32 { x }

#[steadycache::cached(ttl = "1m")]
fn userId(x: u32) -> u32 { x }

#[steadycache::cached(ttl = "1m")]
async fn get_user(x: u32) -> u32 { x }

#[steadycache::cached(ttl = "1m")]
fn get_User(x: u32) -> u32 { x }

fn main() {}
