//! Fuzz prompt-template parsing and rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musicscore_data::metadata::Fields;
use musicscore_data::name::PageName;
use musicscore_data::prompt::Template;

fuzz_target!(|s: &str| {
    if let Ok(t) = Template::parse(s) {
        let f = Fields {
            key: Some("C major".into()),
            ..Fields::default()
        };
        let _ = t.render(
            &f,
            Some(&PageName {
                file_id: 1,
                page: 2,
            }),
        );
        let _ = t.render(&Fields::default(), None);
    }
});
