package rails_test

import (
	"fmt"

	"github.com/cablecar/cablecar/rails"
)

func ExampleChannelName() {
	fmt.Println(rails.ChannelName("Chat::RoomChannel"))
	fmt.Println(rails.ChannelName("Admin::Reports::DailyStatsChannel"))
	// Output:
	// chat:room
	// admin:reports:daily_stats
}

func ExampleGlobalIDParam() {
	fmt.Println(rails.GlobalID("myapp", "Document", "123"))
	fmt.Println(rails.GlobalIDParam("myapp", "Document", "123"))
	// Output:
	// gid://myapp/Document/123
	// Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz
}

// DocumentChannel.broadcast_to(document, …) in Rails publishes to this Redis
// channel when cable.yml sets channel_prefix: myapp_production.
func ExampleBroadcasting() {
	stream := rails.Broadcasting("DocumentChannel", rails.GlobalIDParam("myapp", "Document", "123"))
	fmt.Println(stream)
	fmt.Println(rails.RedisChannel("myapp_production", stream))
	// Output:
	// document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz
	// myapp_production:document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz
}

func ExampleConnectionIdentifier() {
	user := rails.GlobalIDParam("myapp", "User", "42")
	id := rails.ConnectionIdentifier(user, "AAA")
	fmt.Println(id)
	fmt.Println(rails.RedisChannel("myapp_production", "action_cable/"+id))
	// Output:
	// AAA:Z2lkOi8vbXlhcHAvVXNlci80Mg
	// myapp_production:action_cable/AAA:Z2lkOi8vbXlhcHAvVXNlci80Mg
}
