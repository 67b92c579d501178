//! Previous/next paging over a server-side list.

use leptos::prelude::*;

/// "Previous · from–to of total noun · Next" over a list whose page starts at `offset`;
/// `set_offset` receives the new start.
#[component]
pub fn Pager(
    #[prop(into)] offset: Signal<i64>,
    set_offset: Callback<i64>,
    page_size: i64,
    total: i64,
    noun: &'static str,
) -> impl IntoView {
    let at_end = move || offset.get() + page_size >= total;
    view! {
        <div class="pager">
            <button disabled=move || offset.get() == 0
                on:click=move |_| set_offset.run((offset.get() - page_size).max(0))>"Previous"</button>
            <span>{move || format!("{}–{} of {total} {noun}", offset.get() + 1, (offset.get() + page_size).min(total))}</span>
            <button disabled=at_end
                on:click=move |_| set_offset.run(offset.get() + page_size)>"Next"</button>
        </div>
    }
}
